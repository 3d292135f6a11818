"""Write deploy/kubernetes/prometheusrule.yaml from prometheus/rules.yml, comments included.

The rule groups are copied as text, indented under `spec:`, so the Prometheus Operator gets
exactly the rules that `promtool` tests; the result is parsed back and compared before it is
written. `--check` writes nothing and exits 1 when the committed file is out of date.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES_FILE = ROOT / "prometheus" / "rules.yml"
OUTPUT_FILE = ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml"
COMMAND = "python scripts/render_k8s_rules.py"
HEADER = f"""\
# Generated from prometheus/rules.yml by `{COMMAND}`.
# Edit the rules there and run the script again; tests fail while this file differs.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: bcc-image-exporter
  labels:
    app.kubernetes.io/name: bcc-image-exporter
    app.kubernetes.io/component: exporter
spec:
"""
INDENT = "  "


class RenderError(Exception):
    """The rules file cannot be nested under `spec:` as it is."""


def render(rules_text: str) -> str:
    """Return the PrometheusRule manifest that holds the groups of a rules file."""
    lines = rules_text.splitlines()
    # The file's opening comment is about loading it with rule_files; it does not apply here.
    body = list(itertools.dropwhile(lambda line: not line.strip() or line.startswith("#"), lines))
    if not body or not body[0].startswith("groups:"):
        raise RenderError("the rules file must hold a single top-level key, groups")
    manifest = HEADER + "".join(f"{INDENT}{line}\n" if line else "\n" for line in body)
    _check_same_groups(manifest, rules_text)
    return manifest


def _check_same_groups(manifest: str, rules_text: str) -> None:
    try:
        rules = yaml.safe_load(rules_text)
        spec = yaml.safe_load(manifest)["spec"]
    except (yaml.YAMLError, TypeError, KeyError) as err:
        raise RenderError(f"the rules or the rendered manifest do not parse: {err}") from err
    if not isinstance(rules, dict) or set(rules) != {"groups"}:
        raise RenderError("the rules file must hold a single top-level key, groups")
    if spec != rules:
        raise RenderError(
            "the rendered spec differs from the rules file; does it hold several documents?"
        )


def main(argv: list[str] | None = None) -> int:
    """Write the manifest, or with --check compare it; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed file is out of date"
    )
    options = parser.parse_args(argv)
    try:
        manifest = render(RULES_FILE.read_text(encoding="utf-8"))
    except RenderError as err:
        print(f"{RULES_FILE.relative_to(ROOT)}: {err}", file=sys.stderr)
        return 1
    output = OUTPUT_FILE.relative_to(ROOT)
    if options.check:
        current = OUTPUT_FILE.read_text(encoding="utf-8") if OUTPUT_FILE.exists() else ""
        if current != manifest:
            print(f"{output} is out of date; run {COMMAND}", file=sys.stderr)
            return 1
        print(f"{output} is up to date")
        return 0
    OUTPUT_FILE.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT_FILE.write_text(manifest, encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
