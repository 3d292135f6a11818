"""Hold the typed configuration: defaults, known regions and the data classes."""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.credentials import SecretSource

# Filters queried by default: `All` covers System, Custom and Integration; the others are
# listed separately because BCC does not document whether `All` includes them.
DEFAULT_IMAGE_TYPES = (
    "All",
    "Sharing",
    "GpuBccSystem",
    "GpuBccCustom",
    "FpgaBccSystem",
    "FpgaBccCustom",
)
IMAGE_TYPE_FILTERS = frozenset(
    {
        "All",
        "System",
        "Custom",
        "Integration",
        "Sharing",
        "GpuBccSystem",
        "GpuBccCustom",
        "FpgaBccSystem",
        "FpgaBccCustom",
        "BbcSystem",
        "BbcCustom",
        "EbcTotal",
        "EbcSystem",
        "EbcCustom",
    }
)
KNOWN_REGIONS = {
    "bj": "Beijing",
    "gz": "Guangzhou",
    "su": "Suzhou",
    "hkg": "Hong Kong",
    "fwh": "Wuhan finance",
    "bd": "Baoding",
    "cd": "Chengdu",
    "fsh": "Shanghai finance",
    "sin": "Singapore",
    "yq": "Yangquan",
    "nj": "Nanjing",
}
DEFAULT_ENDPOINT = "https://bcc.{region}.baidubce.com"
IMAGE_LABELS = ("image_type", "os_type", "os_name", "os_version", "os_arch", "status")
DEFAULT_QUOTAS = {"Custom": 20}
# Image kinds with per-image series once `image_info` is switched on without naming any.
DEFAULT_IMAGE_INFO_TYPES = ("Custom",)
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class AccountConfig:
    """Describe one BCE account and the regions to list for it."""

    name: str
    access_key_id: SecretSource
    secret_access_key: SecretSource
    security_token: SecretSource | None
    regions: tuple[str, ...]
    endpoint: str
    quotas: dict[str, int]

    def endpoint_for(self, region: str) -> str:
        """Return the base URL for one region, with `{region}` filled in."""
        return self.endpoint.replace("{region}", region)


@dataclass(frozen=True)
class RefreshConfig:
    """Say when the API is called and how long data stays trustworthy."""

    mode: str = "interval"
    interval: float = 300.0
    min_interval: float = 60.0
    timeout: float = 120.0
    max_staleness: float = 1800.0
    jitter: float = 0.1
    concurrency: int = 8


@dataclass(frozen=True)
class HttpConfig:
    """Set timeouts and retries for calls to the BCC API."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 4
    initial_backoff: float = 0.3
    max_backoff: float = 20.0
    ca_file: str | None = None


@dataclass(frozen=True)
class ImageInfoConfig:
    """Say which image kinds get one series per image, and how many series a target may add."""

    image_types: tuple[str, ...] = ()
    max_series: int = 500


@dataclass(frozen=True)
class Config:
    """Hold everything read from the configuration file."""

    accounts: tuple[AccountConfig, ...]
    refresh: RefreshConfig = RefreshConfig()
    http: HttpConfig = HttpConfig()
    image_types: tuple[str, ...] = DEFAULT_IMAGE_TYPES
    page_size: int = MAX_PAGE_SIZE
    quotas: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    labels: tuple[str, ...] = IMAGE_LABELS
    image_info: ImageInfoConfig = ImageInfoConfig()
