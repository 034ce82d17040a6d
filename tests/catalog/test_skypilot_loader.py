"""Reading SkyPilot v8 catalog directories (`<cloud>/vms.csv`, `common/accelerators.csv`).

Each test writes a tiny directory in SkyPilot's layout and reads it back through
`skyplan.load_catalog`, which must recognise the layout on its own.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

import skyplan
from skyplan.catalog import schema
from tests.conftest import SYNTHETIC


def gpu_info(name: str, count: int, mib: int) -> str:
    """AWS's GpuInfo cell: a Python-literal dict (with commas, so CSV-quoted)."""
    gpus = [
        {"Name": name, "Manufacturer": "NVIDIA", "Count": count, "MemoryInfo": {"SizeInMiB": mib}}
    ]
    return '"' + repr({"Gpus": gpus, "TotalGpuMemoryInMiB": mib * count}) + '"'


AWS_HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,"
    "Region,AvailabilityZone,Arch"
)
AWS = "\n".join(
    [
        AWS_HEADER,
        f"g4dn.xlarge,T4,1.0,4.0,16.0,{gpu_info('T4', 1, 16384)},0.526,0.2,us-east-1,use1-az1,"
        "x86_64",
        f"g4dn.12xlarge,T4,4.0,48.0,192.0,{gpu_info('T4', 4, 16384)},3.912,1.5,us-east-1,"
        "use1-az1,x86_64",
        "m6i.2xlarge,,,8.0,32.0,,0.384,,us-east-1,use1-az2,x86_64",
        "m7g.2xlarge,,,8.0,32.0,,0.3264,0.12,us-east-1,use1-az2,arm64",
        "m6i.large,,,2.0,8.0,,,,us-east-1,use1-az2,x86_64",
        "",
    ]
)

GCP = """\
InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,Price,SpotPrice
n1-highmem-8,8.0,52.0,,,,us-central1,us-central1-a,0.47,0.1
a2-highgpu-1g,12.0,85.0,,,,us-central1,us-central1-a,0.74,0.32
g2-standard-4,4.0,16.0,,,,us-central1,us-central1-a,0.25,0.1
n4-standard-8,8.0,32.0,,,,us-central1,us-central1-a,0.38,0.15
,,,T4,1.0,T4,us-central1,us-central1-a,0.35,0.07
,,,A100,1.0,A100,us-central1,us-central1-a,2.93,0.77
,,,L4,1.0,L4,us-central1,us-central1-a,0.56,0.2
,,,V100,1.0,V100,europe-west4,europe-west4-a,2.48,0.7
"""

AZURE = """\
InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,Generation
Standard_D8s_v5,,,8.0,32.0,,0.384,0.05,eastus,"V1,V2"
Standard_NC4as_T4_v3,T4,1.0,4.0,28.0,T4,0.526,,eastus,"V1,V2"
Standard_B2s,,,2.0,4.0,,,,eastus,V2
"""

ACCELERATORS = """\
AcceleratorName,Clouds
A100,"['AWS', 'Azure', 'GCP']"
T4,"['AWS', 'Azure', 'GCP']"
"""


def write_skypilot(root: Path, **clouds: str) -> Path:
    """A SkyPilot v8 directory with `<cloud>/vms.csv` for each keyword."""
    for cloud, text in clouds.items():
        (root / cloud).mkdir(parents=True, exist_ok=True)
        (root / cloud / "vms.csv").write_text(text, encoding="utf-8")
    (root / "common").mkdir(exist_ok=True)
    (root / "common" / "accelerators.csv").write_text(ACCELERATORS, encoding="utf-8")
    return root


@pytest.fixture
def catalog(tmp_path: Path) -> skyplan.Catalog:
    return skyplan.load_catalog(write_skypilot(tmp_path / "v8", aws=AWS, gcp=GCP, azure=AZURE))


def rows(catalog: skyplan.Catalog, **where: Any) -> list[dict[str, Any]]:
    return [row for row in catalog.frame.to_dicts() if all(row[k] == v for k, v in where.items())]


def only(catalog: skyplan.Catalog, **where: Any) -> dict[str, Any]:
    found = rows(catalog, **where)
    assert len(found) == 1, found
    return found[0]


def test_the_layout_is_detected(catalog: skyplan.Catalog) -> None:
    assert catalog.clouds == ("aws", "azure", "gcp")
    assert catalog.frame.columns == list(schema.NAMES)
    assert dict(catalog.frame.schema) == schema.SCHEMA


def test_provenance_names_the_file_and_date(catalog: skyplan.Catalog, tmp_path: Path) -> None:
    row = only(catalog, cloud="aws", instance_type="g4dn.xlarge")
    assert row[schema.SOURCE] == f"skypilot-v8:{tmp_path / 'v8' / 'aws' / 'vms.csv'}"
    dt.date.fromisoformat(row[schema.AS_OF])


# -- AWS -----------------------------------------------------------------------------------------


def test_aws_gpu_info_is_a_python_literal_with_commas() -> None:
    assert "'SizeInMiB': 16384" in AWS
    assert AWS.splitlines()[1].count(",") > AWS_HEADER.count(",")


def test_aws_gpu_memory_comes_from_gpu_info(catalog: skyplan.Catalog) -> None:
    row = only(catalog, cloud="aws", instance_type="g4dn.xlarge")
    assert row[schema.ACCELERATOR] == "T4"
    assert row[schema.ACCELERATOR_COUNT] == 1
    assert row[schema.ACCELERATOR_MEMORY] == 16


def test_aws_gpu_memory_is_per_device(catalog: skyplan.Catalog) -> None:
    row = only(catalog, cloud="aws", instance_type="g4dn.12xlarge")
    assert row[schema.ACCELERATOR_COUNT] == 4
    assert row[schema.ACCELERATOR_MEMORY] == 16


def test_aws_row_keeps_place_price_and_shape(catalog: skyplan.Catalog) -> None:
    row = only(catalog, cloud="aws", instance_type="g4dn.xlarge")
    assert (row[schema.REGION], row[schema.ZONE]) == ("us-east-1", "use1-az1")
    assert (row[schema.VCPUS], row[schema.MEMORY_GIB]) == (4, 16)
    assert (row[schema.PRICE], row[schema.SPOT_PRICE]) == (0.526, 0.2)
    assert row[schema.ARCH] == "x86_64"
    assert row[schema.CAPACITY] is None
    assert row[schema.GPU_ATTACHED] is False


def test_an_empty_spot_price_means_no_spot(catalog: skyplan.Catalog) -> None:
    row = only(catalog, cloud="aws", instance_type="m6i.2xlarge")
    assert row[schema.SPOT_PRICE] is None
    assert row[schema.ACCELERATOR] is None
    assert row[schema.ACCELERATOR_COUNT] is None


def test_arm_hosts_are_arm64(catalog: skyplan.Catalog) -> None:
    assert only(catalog, instance_type="m7g.2xlarge")[schema.ARCH] == "arm64"


@pytest.mark.parametrize(
    ("cloud", "instance_type"),
    [("aws", "m6i.large"), ("azure", "Standard_B2s")],
    ids=["aws", "azure"],
)
def test_rows_without_any_price_are_dropped(
    catalog: skyplan.Catalog, cloud: str, instance_type: str
) -> None:
    assert rows(catalog, cloud=cloud, instance_type=instance_type) == []


# -- GCP -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance_type", "accelerator", "price", "spot"),
    [
        ("a2-highgpu-1g", "A100", 0.74 + 2.93, 0.32 + 0.77),
        ("g2-standard-4", "L4", 0.25 + 0.56, 0.1 + 0.2),
    ],
    ids=["a2-highgpu-1g-has-an-a100", "g2-standard-4-has-an-l4"],
)
def test_gcp_built_in_gpus_cost_host_plus_gpu(
    catalog: skyplan.Catalog, instance_type: str, accelerator: str, price: float, spot: float
) -> None:
    row = only(catalog, cloud="gcp", instance_type=instance_type)
    assert row[schema.ACCELERATOR] == accelerator
    assert row[schema.ACCELERATOR_COUNT] == 1
    assert row[schema.PRICE] == pytest.approx(price)
    assert row[schema.SPOT_PRICE] == pytest.approx(spot)
    assert row[schema.GPU_ATTACHED] is False
    assert row[schema.ZONE] == "us-central1-a"


def test_gcp_built_in_gpu_memory_is_known(catalog: skyplan.Catalog) -> None:
    assert only(catalog, instance_type="a2-highgpu-1g")[schema.ACCELERATOR_MEMORY] == 40
    assert only(catalog, instance_type="g2-standard-4")[schema.ACCELERATOR_MEMORY] == 24


def test_gcp_n1_host_is_offered_plain(catalog: skyplan.Catalog) -> None:
    plain = only(catalog, instance_type="n1-highmem-8", accelerator=None)
    assert plain[schema.PRICE] == pytest.approx(0.47)
    assert plain[schema.SPOT_PRICE] == pytest.approx(0.1)
    assert plain[schema.GPU_ATTACHED] is False


def test_gcp_n1_host_is_also_offered_with_an_attached_t4(catalog: skyplan.Catalog) -> None:
    attached = only(catalog, instance_type="n1-highmem-8", accelerator="T4")
    assert attached[schema.ACCELERATOR_COUNT] == 1
    assert attached[schema.GPU_ATTACHED] is True
    assert attached[schema.PRICE] == pytest.approx(0.47 + 0.35)
    assert attached[schema.SPOT_PRICE] == pytest.approx(0.1 + 0.07)
    assert (attached[schema.VCPUS], attached[schema.MEMORY_GIB]) == (8, 52)
    assert attached[schema.ACCELERATOR_MEMORY] == 16


def test_gcp_hosts_without_gpus_stay_plain(catalog: skyplan.Catalog) -> None:
    (row,) = rows(catalog, instance_type="n4-standard-8")
    assert row[schema.ACCELERATOR] is None
    assert row[schema.GPU_ATTACHED] is False


def test_gcp_a2_and_g2_are_never_plain_hosts(catalog: skyplan.Catalog) -> None:
    for instance_type in ("a2-highgpu-1g", "g2-standard-4"):
        assert rows(catalog, instance_type=instance_type, accelerator=None) == []


def test_gcp_built_in_gpus_do_not_attach_to_n1(catalog: skyplan.Catalog) -> None:
    attached = {row[schema.ACCELERATOR] for row in rows(catalog, instance_type="n1-highmem-8")}
    assert attached == {None, "T4"}


def test_gcp_gpu_rows_alone_are_not_offers(catalog: skyplan.Catalog) -> None:
    assert rows(catalog, accelerator="V100") == []
    assert rows(catalog, region="europe-west4") == []
    gcp = rows(catalog, cloud="gcp")
    assert all(row[schema.INSTANCE_TYPE] for row in gcp)
    assert len(gcp) == 5  # n1 plain, n1 + T4, a2 (A100), g2 (L4), n4


def test_gcp_n1_hosts_beyond_the_attach_limit_get_no_gpu(tmp_path: Path) -> None:
    text = GCP + "n1-highmem-16,16.0,104.0,,,,us-central1,us-central1-a,0.95,0.2\n"
    text += ",,,V100,1.0,V100,us-central1,us-central1-a,2.48,0.7\n"
    catalog = skyplan.load_catalog(write_skypilot(tmp_path, gcp=text))
    # V100:1 attaches to hosts of at most 12 vCPUs and 78 GiB; T4:1 to 48 vCPUs and 312 GiB
    assert {r[schema.ACCELERATOR] for r in rows(catalog, instance_type="n1-highmem-16")} == {
        None,
        "T4",
    }
    assert {r[schema.ACCELERATOR] for r in rows(catalog, instance_type="n1-highmem-8")} == {
        None,
        "T4",
        "V100",
    }


# -- Azure ---------------------------------------------------------------------------------------


def test_azure_has_no_zones(catalog: skyplan.Catalog) -> None:
    azure = rows(catalog, cloud="azure")
    assert azure
    assert all(row[schema.ZONE] is None for row in azure)


def test_azure_gpu_memory_comes_from_the_hardware_table(catalog: skyplan.Catalog) -> None:
    row = only(catalog, instance_type="Standard_NC4as_T4_v3")
    assert row[schema.ACCELERATOR] == "T4"
    assert row[schema.ACCELERATOR_MEMORY] == 16
    assert row[schema.SPOT_PRICE] is None
    assert row[schema.PRICE] == pytest.approx(0.526)


# -- errors --------------------------------------------------------------------------------------


def test_a_vms_csv_missing_required_columns_is_named(tmp_path: Path) -> None:
    root = write_skypilot(tmp_path, aws="InstanceType,vCPUs\nm6i.large,2\n")
    with pytest.raises(skyplan.CatalogError) as raised:
        _ = skyplan.load_catalog(root).frame
    message = str(raised.value)
    assert str(root / "aws" / "vms.csv") in message
    for column in ("MemoryGiB", "Price", "Region"):
        assert column in message


def test_a_non_numeric_price_is_a_catalog_error(tmp_path: Path) -> None:
    text = AWS.replace("0.384", "cheap")
    root = write_skypilot(tmp_path, aws=text)
    with pytest.raises(skyplan.CatalogError, match=r"vms\.csv"):
        _ = skyplan.load_catalog(root).frame


def test_a_catalog_error_is_an_input_error() -> None:
    assert issubclass(skyplan.CatalogError, skyplan.InputError)
    assert skyplan.CatalogError("x").exit_code == 2


# -- the shared synthetic catalog ----------------------------------------------------------------


@pytest.mark.shared
def test_the_synthetic_catalog_loads(synthetic_catalog: skyplan.Catalog) -> None:
    assert len(synthetic_catalog) > 70_000
    assert {"aws", "gcp", "azure"} <= set(synthetic_catalog.clouds)
    assert {"A100", "T4", "L4", "H100"} <= set(synthetic_catalog.accelerators)


@pytest.mark.shared
def test_the_synthetic_catalog_is_cached(synthetic_catalog: skyplan.Catalog) -> None:
    assert skyplan.load_catalog(SYNTHETIC) is synthetic_catalog
    assert skyplan.load_catalog(str(SYNTHETIC)) is synthetic_catalog


@pytest.mark.shared
def test_the_synthetic_catalog_prices_gcp_gpus_with_their_host(
    synthetic_catalog: skyplan.Catalog,
) -> None:
    frame = synthetic_catalog.frame
    gcp = frame.filter(frame[schema.CLOUD] == "gcp")
    assert gcp.filter(gcp[schema.INSTANCE_TYPE] == "").height == 0
    a2 = gcp.filter(gcp[schema.INSTANCE_TYPE] == "a2-highgpu-1g")
    assert a2.height > 0
    assert set(a2.get_column(schema.ACCELERATOR).to_list()) == {"A100"}
    assert gcp.filter(gcp[schema.GPU_ATTACHED]).height > 0
