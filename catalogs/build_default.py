"""Regenerate catalogs/default/aws.csv from the price data apache-libcloud ships.

    .venv/bin/python catalogs/build_default.py            # rewrite catalogs/default/aws.csv
    .venv/bin/python catalogs/build_default.py --check    # exit 1 if the file is out of date

The output depends only on the installed apache-libcloud (its libcloud/data/pricing.json and
EC2 size table), so the same libcloud version always yields the same bytes; the test
tests/catalog/test_default_catalog.py checks exactly that. After upgrading libcloud, run this
script and commit the new aws.csv. catalogs/default/curated.csv is edited by hand (see
catalogs/README.md for where each of its numbers comes from).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "catalogs" / "default" / "aws.csv"


def render(frame: pl.DataFrame) -> str:
    """The CSV text of an aws.csv frame (header = the schema's column names)."""
    return frame.write_csv(null_value="")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write aws.csv")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "src"))
    from skyplan.catalog.fetchers import libcloud_ec2

    frame = libcloud_ec2.build(progress=lambda line: print(line, file=sys.stderr))
    text = render(frame)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date ({frame.height} rows)", file=sys.stderr)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".csv.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.output)
    print(f"wrote {args.output} ({frame.height} rows)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
