"""Generate seeded, realistic BCC image records and serve them in a stable order per filter."""

from __future__ import annotations

import random
import string
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

Image = dict[str, Any]
T = TypeVar("T")

SYSTEM_KINDS = ("System", "Integration", "GpuBccSystem", "FpgaBccSystem", "BbcSystem", "EbcSystem")
CUSTOM_KINDS = ("Custom", "GpuBccCustom", "FpgaBccCustom", "BbcCustom", "EbcCustom")
IMAGE_KINDS = (
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
    "EbcSystem",
    "EbcCustom",
)
FILTERS: dict[str, tuple[str, ...]] = {
    "All": ("System", "Custom", "Integration"),
    "EbcTotal": ("EbcSystem", "EbcCustom"),
    **{kind: (kind,) for kind in IMAGE_KINDS},
}
DEFAULT_FILTER = "All"

ID_ALPHABET = string.ascii_letters + string.digits
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
ARCH_X86 = "x86_64 (64bit)"
ARCH_ARM = "aarch64"
SYSTEM_SPAN = (1546300800, 1748736000)  # 2019-01-01 .. 2025-06-01
CUSTOM_SPAN = (1672531200, 1748736000)  # 2023-01-01 .. 2025-06-01
SPARSE_SHARE = 0.04
DISK_SIZES = (20, 40, 50, 100)
SHARED_COUNTS = (0, 0, 0, 1, 2, 5)
# (osType, osName, versions), repeated to weight the draw towards common Linux images.
OS_TABLE = (
    *[("linux", "CentOS", ("7.5", "7.6", "7.9", "8.4"))] * 6,
    *[("linux", "Ubuntu", ("18.04 LTS", "20.04 LTS", "22.04 LTS", "24.04 LTS"))] * 5,
    *[("linux", "Debian", ("10.13", "11.9", "12.5"))] * 2,
    *[("linux", "Rocky Linux", ("8.9", "9.3"))] * 2,
    *[("linux", "BaiduLinux", ("3.0",))] * 2,
    ("linux", "openEuler", ("22.03 LTS",)),
    *[("windows", "Windows Server", ("2016 DataCenter", "2019 DataCenter", "2022 DataCenter"))]
    * 2,
)
CUSTOM_STATUSES = (
    *["Available"] * 16,
    "Creating",
    "CreatedFailed",
    "NotAvailable",
    "Error",
)
KIND_SUFFIX = {"Gpu": " GPU", "Fpg": " FPGA", "Bbc": " BBC", "Ebc": " EBC"}
ENVIRONMENTS = ("prod", "staging", "dev", "test", "ci")
ROLES = ("web", "api", "db", "cache", "worker", "gateway", "batch", "ml-train")
APPS = ("LNMP", "Docker CE", "WordPress", "Node.js", "Java Web", "BT Panel", "GitLab CE")
DESCRIPTIONS = ("nightly build", "golden image", "hardened baseline", "before kernel upgrade")
UNICODE_NAMES = ("测试镜像", "生产环境基线", "web base v2")
# (field, removed): a sparse image loses the field entirely when True, else it becomes null.
SPARSE_FIELDS = (
    ("osVersion", False),
    ("osArch", True),
    ("osBuild", True),
    ("osLang", False),
    ("osName", False),
    ("desc", True),
    ("minDiskGb", True),
)


class RegionImages:
    """Hold one region's images by kind and serve filter views in a stable order."""

    def __init__(self, by_kind: Mapping[str, list[Image]]) -> None:
        self._by_kind = dict(by_kind)
        self._views: dict[str, list[Image]] = {}

    def view(self, image_filter: str) -> list[Image]:
        """Return the images a filter lists, cached; callers must not mutate the list."""
        cached = self._views.get(image_filter)
        if cached is None:
            kinds = FILTERS[image_filter]
            cached = [image for kind in kinds for image in self._by_kind.get(kind, ())]
            self._views[image_filter] = cached
        return cached

    def every_kind(self) -> list[Image]:
        """Return all images of every kind, in kind order."""
        return [image for kind in IMAGE_KINDS for image in self._by_kind.get(kind, ())]


def count_problems(counts: Mapping[str, object]) -> list[str]:
    """List what is wrong with a `{kind: count}` mapping; empty when it is valid."""
    problems = []
    for kind, count in counts.items():
        if kind not in IMAGE_KINDS:
            problems.append(f"unknown image type {kind!r}; use one of {', '.join(IMAGE_KINDS)}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            problems.append(f"count of {kind!r} must be a whole number >= 0, got {count!r}")
    return problems


def build_region(
    seed: int, access_key_id: str, region: str, counts: Mapping[str, int]
) -> RegionImages:
    """Generate every kind of one region; each kind depends only on its own seed inputs."""
    return RegionImages(
        {
            kind: generate_images(seed, access_key_id, region, kind, count)
            for kind, count in counts.items()
        }
    )


def generate_images(
    seed: int, access_key_id: str, region: str, kind: str, count: int
) -> list[Image]:
    """Generate `count` images of one kind, the same for the same inputs."""
    rng = random.Random(f"{seed}/{access_key_id}/{region}/{kind}")
    seen: set[str] = set()
    images = []
    for index in range(count):
        image = _image(rng, kind, index)
        while image["id"] in seen:
            image["id"] = _image_id(rng)
        seen.add(image["id"])
        images.append(image)
    return images


def _image(rng: random.Random, kind: str, index: int) -> Image:
    draw = rng.random
    custom = kind in CUSTOM_KINDS
    os_type, os_name, versions = _pick(draw, OS_TABLE)
    os_version = _pick(draw, versions)
    windows = os_type == "windows"
    arch = ARCH_ARM if not windows and draw() < 0.1 else ARCH_X86
    start, end = SYSTEM_SPAN if kind in SYSTEM_KINDS else CUSTOM_SPAN
    created = time.strftime(TIME_FORMAT, time.gmtime(start + int(draw() * (end - start))))
    min_disk = 40 if windows else 20
    image: Image = {
        "id": _image_id(rng),
        "name": _name(rng, kind, os_name, os_version, index, created),
        "type": kind,
        "osType": os_type,
        "osVersion": os_version,
        "osArch": arch,
        "osName": os_name,
        "osBuild": created[:10].replace("-", "") + f"{int(draw() * 100):02d}",
        "osLang": "CHS" if windows and draw() < 0.5 else "ENG",
        "createTime": created,
        "status": _pick(draw, CUSTOM_STATUSES) if custom else "Available",
        "desc": _pick(draw, DESCRIPTIONS) if custom and draw() < 0.4 else None,
        "specialVersion": "",
        "package": kind == "Integration",
        "encrypted": custom and draw() < 0.1,
        "minDiskGb": min_disk,
        "diskSize": max(min_disk, _pick(draw, DISK_SIZES)) if custom else min_disk,
        "ephemeralSize": 0,
        "shareToUserNumLimit": 50 if custom else None,
        "sharedToUserNum": _pick(draw, SHARED_COUNTS) if custom else 0,
    }
    if draw() < SPARSE_SHARE:
        _sparsify(rng, image)
    return image


def _pick(draw: Callable[[], float], choices: Sequence[T]) -> T:
    return choices[int(draw() * len(choices))]


def _image_id(rng: random.Random) -> str:
    number = rng.getrandbits(47)  # 2**47 < 62**8, so eight base-62 digits always suffice
    digits = []
    for _ in range(8):
        number, digit = divmod(number, 62)
        digits.append(ID_ALPHABET[digit])
    return "m-" + "".join(digits)


def _name(
    rng: random.Random, kind: str, os_name: str, os_version: str, index: int, created: str
) -> str:
    draw = rng.random
    if kind == "Integration":
        return f"{_pick(draw, APPS)} on {os_name} {os_version}"
    if kind == "Sharing":
        return f"shared-{_pick(draw, ROLES)}-{index}"
    if kind in SYSTEM_KINDS:
        return f"{os_name} {os_version}{KIND_SUFFIX.get(kind[:3], '')}"
    if draw() < 0.05:
        return f"{_pick(draw, UNICODE_NAMES)}-{index}"
    stamp = created[:10].replace("-", "")
    return f"{_pick(draw, ENVIRONMENTS)}-{_pick(draw, ROLES)}-{stamp}-{index}"


def _sparsify(rng: random.Random, image: Image) -> None:
    for field, removed in rng.sample(SPARSE_FIELDS, k=rng.randint(1, 2)):
        if removed:
            image.pop(field, None)
        else:
            image[field] = None
