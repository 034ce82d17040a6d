"""`skyplan catalog refresh` fetchers, against a real local HTTP server serving fixtures in the
documented AWS Price List Bulk API and Azure Retail Prices API shapes (tests/catalog/fixtures).
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

from skyplan.catalog import schema as c
from skyplan.catalog.fetchers import REFRESHERS, aws, aws_families, azure, refresh
from skyplan.errors import CatalogError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
AWS_OFFER = re.compile(r"^/offers/v1\.0/aws/AmazonEC2/\d+/(?P<region>[a-z0-9-]+)/index\.json$")


@dataclass
class Server:
    base: str
    requests: list[str] = field(default_factory=list)


def _respond(path: str, query: dict[str, list[str]], base: str) -> tuple[int, bytes]:
    if path.startswith("/error500/"):
        return 500, b"internal error"
    if path.startswith("/garbage/"):
        return 200, b'{"regions": {"us-east-1": '
    if path.startswith("/wrongshape/"):
        return 200, b'{"unexpected": true}'
    if path == aws.INDEX_PATH:
        return 200, (FIXTURES / "aws" / "region_index.json").read_bytes()
    match = AWS_OFFER.match(path)
    if match and (FIXTURES / "aws" / f"{match['region']}.json").is_file():
        return 200, (FIXTURES / "aws" / f"{match['region']}.json").read_bytes()
    if path == "/api/retail/prices":
        page = "page2" if "$skip" in query else "page1"
        text = (FIXTURES / "azure" / f"{page}.json").read_text(encoding="utf-8")
        return 200, text.replace("{BASE}", base).encode()
    return 404, b"not found"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    state = Server(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            parts = urllib.parse.urlsplit(self.path)
            status, body = _respond(parts.path, urllib.parse.parse_qs(parts.query), state.base)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _row(frame: pl.DataFrame, **where: str) -> dict[str, object]:
    rows = frame.filter(*(pl.col(k) == v for k, v in where.items())).to_dicts()
    assert len(rows) == 1, f"expected one row for {where}, got {rows}"
    return rows[0]


def _accel(row: dict[str, object]) -> tuple[object, object, object]:
    return row[c.ACCELERATOR], row[c.ACCELERATOR_COUNT], row[c.ACCELERATOR_MEMORY]


# --- AWS Price List Bulk API -------------------------------------------------------------


def test_aws_parses_linux_shared_on_demand_offers(server: Server) -> None:
    lines: list[str] = []
    frame = aws.fetch(
        endpoint=server.base, regions=["us-east-1", "eu-west-1"], progress=lines.append
    )
    assert frame.columns == list(c.NAMES)
    assert frame.schema == c.SCHEMA
    assert sorted(frame.get_column(c.REGION).unique()) == ["eu-west-1", "us-east-1"]
    use1 = frame.filter(pl.col(c.REGION) == "us-east-1")
    # Windows, Dedicated, reserved-capacity, SQL, zero-priced, unpriced and storage SKUs are out.
    kept = ["g5.xlarge", "inf2.xlarge", "m7g.large", "p4d.24xlarge", "x2iedn.32xlarge"]
    assert sorted(use1.get_column(c.INSTANCE_TYPE)) == kept
    p4d = _row(frame, region="us-east-1", instance_type="p4d.24xlarge")
    assert p4d[c.PRICE] == pytest.approx(32.7726)
    assert _accel(p4d) == ("A100", 8.0, 40.0)
    assert (p4d[c.VCPUS], p4d[c.MEMORY_GIB], p4d[c.ARCH]) == (96.0, 1152.0, "x86_64")
    assert p4d[c.SPOT_PRICE] is None and p4d[c.ZONE] is None
    assert p4d[c.AS_OF] == "2025-03-01"
    assert str(p4d[c.SOURCE]).startswith(server.base + "/offers/v1.0/aws/AmazonEC2/")
    g5 = _row(frame, instance_type="g5.xlarge")
    assert _accel(g5) == ("A10G", 1.0, 24.0)
    # No "gpu" attribute for Inferentia: the count comes from the family table.
    inf2 = _row(frame, instance_type="inf2.xlarge")
    assert (inf2[c.ACCELERATOR], inf2[c.ACCELERATOR_COUNT]) == ("Inferentia2", 1.0)
    m7g = _row(frame, region="us-east-1", instance_type="m7g.large")
    assert (m7g[c.ARCH], m7g[c.ACCELERATOR], m7g[c.PRICE]) == ("arm64", None, 0.0816)
    assert _row(frame, instance_type="x2iedn.32xlarge")[c.MEMORY_GIB] == 4096.0  # "4,096 GiB"
    g6 = _row(frame, region="eu-west-1", instance_type="g6.xlarge")
    assert (g6[c.ACCELERATOR], g6[c.PRICE]) == ("L4", pytest.approx(1.0064))
    assert any("us-east-1" in line and "downloading" in line for line in lines)
    # Only the index and the two requested regions were fetched.
    assert len(server.requests) == 3 and not any("ap-south-1" in r for r in server.requests)


def test_aws_without_region_filter_reads_every_region(server: Server) -> None:
    frame = refresh("aws", endpoint=server.base)
    assert sorted(frame.get_column(c.REGION).unique()) == ["ap-south-1", "eu-west-1", "us-east-1"]


def test_aws_unknown_region_suggests_the_nearest(server: Server) -> None:
    with pytest.raises(CatalogError, match=r"us-east-7.*did you mean 'us-east-1'"):
        aws.fetch(endpoint=server.base, regions=["us-east-7"])


# --- Azure Retail Prices API -------------------------------------------------------------


def test_azure_follows_pages_and_merges_spot(server: Server) -> None:
    lines: list[str] = []
    frame = refresh("azure", endpoint=server.base + "/api/retail/prices", progress=lines.append)
    assert frame.columns == list(c.NAMES)
    assert frame.height == 3
    a100 = _row(frame, instance_type="Standard_NC24ads_A100_v4")
    # Low Priority and Windows meters are skipped; the latest effectiveStartDate wins.
    assert (a100[c.PRICE], a100[c.SPOT_PRICE]) == (3.673, 0.444433)
    assert _accel(a100) == ("A100-80GB", 1.0, 80.0)
    assert (a100[c.VCPUS], a100[c.MEMORY_GIB], a100[c.REGION]) == (24.0, 220.0, "eastus")
    d2 = _row(frame, instance_type="Standard_D2s_v5")
    # On-demand on page 1, spot on page 2.
    assert (d2[c.PRICE], d2[c.SPOT_PRICE], d2[c.ACCELERATOR]) == (0.096, 0.0106, None)
    assert (d2[c.VCPUS], d2[c.MEMORY_GIB]) == (2.0, 8.0)
    t4 = _row(frame, instance_type="Standard_NC4as_T4_v3")
    # The spot meter on page 2 is a Windows product: no Linux spot price.
    assert (t4[c.REGION], t4[c.PRICE], t4[c.SPOT_PRICE]) == ("westus2", 0.526, None)
    assert _accel(t4) == ("T4", 1.0, 16.0)
    assert str(t4[c.SOURCE]).startswith(server.base + "/api/retail/prices?")
    # HB120rs_v3 has no specs in SIZES: dropped and counted.
    assert not frame.filter(pl.col(c.INSTANCE_TYPE) == "Standard_HB120rs_v3").height
    assert any("dropped 1 VM size" in line for line in lines)
    # Two pages were read; the first carried the documented $filter.
    assert len(server.requests) == 2
    first = urllib.parse.parse_qs(urllib.parse.urlsplit(server.requests[0]).query)
    assert first["$filter"] == [azure.BASE_FILTER]
    assert "$skip=100" in server.requests[1]


def test_azure_region_filter_is_sent() -> None:
    url = azure.first_url("https://example.test/api/retail/prices", ["eastus", "westus2"])
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["$filter"] == [
        azure.BASE_FILTER + " and (armRegionName eq 'eastus' or armRegionName eq 'westus2')"
    ]


def test_azure_spec_table_is_well_formed() -> None:
    for name, size in azure.SIZES.items():
        assert name.startswith("Standard_")
        assert size.vcpus > 0 and size.memory_gib > 0
        assert (size.accelerator is None) == (size.accelerator_count is None)


# --- registry and errors -----------------------------------------------------------------


def test_registry_names() -> None:
    assert set(REFRESHERS) == {"aws", "azure", "aws-libcloud"}


def test_unknown_cloud_suggests_the_nearest() -> None:
    with pytest.raises(CatalogError, match=r"'azur'.*did you mean 'azure'\?"):
        refresh("azur")
    with pytest.raises(CatalogError, match=r"known: aws, aws-libcloud, azure"):
        refresh("oracle")


@pytest.mark.parametrize("cloud", ["aws", "azure"])
@pytest.mark.parametrize(
    ("prefix", "message"),
    [("/error500", r"HTTP 500"), ("/garbage", r"not valid JSON"), ("/wrongshape", r"unexpected")],
)
def test_server_failures_are_catalog_errors(
    server: Server, cloud: str, prefix: str, message: str
) -> None:
    endpoint = server.base + prefix + ("/api/retail/prices" if cloud == "azure" else "")
    with pytest.raises(CatalogError, match=message) as info:
        refresh(cloud, endpoint=endpoint)
    assert server.base + prefix in str(info.value)  # the error names the URL


def test_unreachable_endpoint_is_a_catalog_error(server: Server) -> None:
    # A port nothing listens on: connection refused, reported with the URL.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CatalogError, match=rf"127\.0\.0\.1:{port}.*cannot fetch"):
        refresh("aws", endpoint=f"http://127.0.0.1:{port}")


# --- offline libcloud refresher ----------------------------------------------------------


def test_aws_libcloud_refresh_is_offline_and_conforms() -> None:
    frame = refresh("aws-libcloud", regions=["eu-north-1"])
    assert frame.height > 50
    assert frame.get_column(c.REGION).unique().to_list() == ["eu-north-1"]
    assert frame.equals(c.conform(frame, origin="test"))
    with pytest.raises(CatalogError, match="mars-1"):
        refresh("aws-libcloud", regions=["mars-1"])
    with pytest.raises(CatalogError, match="no endpoint"):
        refresh("aws-libcloud", endpoint="http://127.0.0.1:1")


def test_family_helpers() -> None:
    assert aws_families.arch_for("c7gn.large") == "arm64"
    assert aws_families.arch_for("g4dn.xlarge") == "x86_64"
    assert aws_families.arch_for("g5g.xlarge") == "arm64"
    assert aws_families.arch_for("a1.large", "AWS Graviton Processor") == "arm64"
    assert aws_families.accelerator_for("p5.48xlarge", "NA") == ("H100", 8.0, 80.0)
    assert aws_families.accelerator_for("c5.large", None) is None
    with pytest.raises(ValueError, match=r"trn1\.64xlarge"):
        aws_families.accelerator_for("trn1.64xlarge", None)
    assert aws_families.parse_memory_gib("1,952 GiB") == 1952.0
