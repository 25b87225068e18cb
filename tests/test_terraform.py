"""terraform/ checked statically (no Terraform binary or AWS account here): every promise of the infrastructure,
read from the parsed HCL; the Glue columns against the schema declaration; the runner's boot script."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest

from generator import schema
from generator.cli import main
from generator.manifest import COMMITTED_DIR

TF = Path(__file__).resolve().parents[1] / "terraform"


def _clean(x):
    """python-hcl2 keeps quotes around literals and marks blocks; give plain values."""
    if isinstance(x, dict):
        return {_clean(k): _clean(v) for k, v in x.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    if isinstance(x, str) and len(x) >= 2 and x[0] == x[-1] == '"':
        return x[1:-1]
    return x


def _load() -> dict:
    merged: dict = {"resource": {}, "data": {}, "variable": {}, "output": {}, "locals": {}, "moved": []}
    for path in sorted(TF.glob("*.tf")):
        with open(path) as f:
            doc = _clean(hcl2.load(f))
        for block in doc.get("locals", []):
            merged["locals"].update(block)
        merged["moved"] += doc.get("moved", [])
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        merged[kind][(rtype, name)] = body
        for kind in ("variable", "output"):
            for block in doc.get(kind, []):
                merged[kind].update(block)
    return merged


@pytest.fixture(scope="module")
def tf() -> dict:
    return _load()


def _one(x):
    return x[0] if isinstance(x, list) else x


def test_the_bucket_is_private_encrypted_versioned_and_tls_only(tf):
    r = tf["resource"]
    block = r[("aws_s3_bucket_public_access_block", "events")]
    assert all(
        block[k] is True
        for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    )
    assert _one(r[("aws_s3_bucket_ownership_controls", "events")]["rule"])["object_ownership"] == "BucketOwnerEnforced"
    sse = _one(
        _one(r[("aws_s3_bucket_server_side_encryption_configuration", "events")]["rule"])[
            "apply_server_side_encryption_by_default"
        ]
    )
    assert "AES256" in sse["sse_algorithm"] and "aws:kms" in sse["sse_algorithm"]
    assert _one(r[("aws_s3_bucket_versioning", "events")]["versioning_configuration"])["status"] == "Enabled"
    deny = _one(tf["data"][("aws_iam_policy_document", "tls_only")]["statement"])
    assert deny["effect"] == "Deny" and deny["actions"] == ["s3:*"]
    cond = _one(deny["condition"])
    assert (cond["variable"], cond["values"]) == ("aws:SecureTransport", ["false"])
    rules = r[("aws_s3_bucket_lifecycle_configuration", "events")]["rule"]
    abort = [x for x in rules if "abort_incomplete_multipart_upload" in x]
    assert abort and abort[0]["status"] == "Enabled"
    assert _one(abort[0]["abort_incomplete_multipart_upload"])["days_after_initiation"] == 1


def test_the_runner_role_allows_only_what_the_generator_does(tf):
    statements = tf["data"][("aws_iam_policy_document", "runner")]["statement"]
    allowed = [a for s in statements if s.get("effect", "Allow") == "Allow" for a in s["actions"]]
    assert allowed, "the role allows something"
    assert not any(a == "*" or a.endswith(":*") for a in allowed), "no wildcard actions"
    assert not any("Delete" in a for a in allowed), "no delete"
    assert not any(
        a.startswith(("s3:PutBucket", "s3:DeleteBucket", "s3:PutLifecycle", "s3:PutEncryption")) for a in allowed
    ), "no bucket configuration"
    s3_resources = [r for s in statements for r in s["resources"] if "aws_s3_bucket" in r]
    assert all(r.startswith("${aws_s3_bucket.events.arn}") for r in s3_resources), "this bucket only"
    listing = [s for s in statements if "s3:ListBucket" in s["actions"]]
    assert listing
    for statement in listing:  # every listing is scoped: the events prefix, or the benchmark scripts' folder
        cond = _one(statement["condition"])
        # moto does not evaluate s3:prefix conditions, so this scoping is asserted here, statically.
        assert cond["variable"] == "s3:prefix"
        assert all("events_prefix" in v or v.startswith("_artifacts/perf/") for v in cond["values"])
    writes = [s for s in statements if "s3:PutObject" in s["actions"]]
    assert writes and all(r.endswith("${local.events_prefix}*") for r in writes[0]["resources"])
    # The generator's own calls are all covered.
    needed = {
        "s3:PutObject",
        "s3:GetObject",
        "s3:AbortMultipartUpload",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
    }
    assert needed <= set(allowed)


def test_the_runner_instance_is_locked_down_and_terminates_itself(tf):
    lt = tf["resource"][("aws_launch_template", "runner")]
    meta = _one(lt["metadata_options"])
    assert meta["http_tokens"] == "required"
    ebs = _one(_one(lt["block_device_mappings"])["ebs"])
    assert ebs["encrypted"] is True and ebs["volume_type"] == "gp3"
    assert lt["instance_initiated_shutdown_behavior"] == "terminate"
    assert "key_name" not in lt, "no SSH key"
    sg = tf["resource"][("aws_security_group", "runner")]
    assert "ingress" not in sg, "no inbound rule at all"
    assert "${local.arch}" in tf["data"][("aws_ssm_parameter", "al2023")]["name"]
    assert tf["resource"][("aws_cloudwatch_log_group", "runner")]["retention_in_days"] == "${var.log_retention_days}"


def test_every_input_is_documented_and_the_key_ones_validated(tf):
    for name, body in tf["variable"].items():
        assert body.get("description"), name
    for name in ("region", "bucket_name", "instance_type", "workers", "events", "prefix", "schedule"):
        assert "validation" in tf["variable"][name], name
    for name in (
        "bucket",
        "prefix",
        "runner_role_arn",
        "instance_id",
        "log_group",
        "glue_table",
        "glue_table_committed",
        "example_athena_query",
    ):
        assert name in tf["output"], name


def test_glue_columns_are_the_schema_declaration():
    on_disk = json.loads((TF / "glue_columns.json").read_text())
    assert on_disk == schema.glue_columns(), "regenerate with: gen schema --glue > terraform/glue_columns.json"
    assert [c["name"] for c in on_disk] == list(schema.COLUMN_NAMES)


def test_glue_tables_project_dt_over_every_part_and_over_the_committed_index(tf):
    """Two tables from one definition: `events` reads the Parquet parts under events/; `events_committed` reads
    the committed-parts index the generator writes under committed/ (one SymlinkTextInputFormat file per run and
    day, listing the parts of its manifest), so Athena sees committed runs only."""
    table = tf["resource"][("aws_glue_catalog_table", "events")]
    assert table["for_each"] == "${local.glue_tables}" and table["name"] == "${each.key}"
    params = table["parameters"]
    assert params["projection.enabled"] == "true" and params["projection.dt.type"] == "date"
    assert params["projection.dt.format"] == "yyyy-MM-dd"
    folder = "${local.events_prefix}${each.value.folder}/"
    assert params["storage.location.template"].endswith(f"{folder}dt=$${{dt}}/")
    assert _one(table["storage_descriptor"])["location"].endswith(folder)
    assert _one(table["partition_keys"])["name"] == "dt"
    tables = tf["locals"]["glue_tables"]
    assert tables["events"]["folder"] == "events"
    assert tables["events"]["input_format"].endswith("MapredParquetInputFormat")
    assert tables["events_committed"]["folder"] == COMMITTED_DIR, "where the generator writes the index"
    assert tables["events_committed"]["input_format"] == "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
    serde = _one(_one(table["storage_descriptor"])["ser_de_info"])["serialization_library"]
    assert serde.endswith("ParquetHiveSerDe"), "the listed files are Parquet"
    # The table that existed before the index keeps its state: moved, not destroyed and created again.
    assert {"from": "aws_glue_catalog_table.events", "to": 'aws_glue_catalog_table.events["events"]'} in [
        {k: m[k].replace("${", "").replace("}", "") for k in ("from", "to")} for m in tf["moved"]
    ]


def test_the_committed_index_expires_before_the_parts_it_lists(tf):
    """Athena fails a query that meets a listed file that is gone: with expiry on, the index under committed/
    goes a day before the parts (S3 rounds expiry up to midnight UTC; a run's index is written after its parts,
    within the day), and an expiry of 1 day, which leaves no earlier day, is refused."""
    rules = {r["id"]: r for r in tf["resource"][("aws_s3_bucket_lifecycle_configuration", "events")]["rule"]}
    parts, index = rules["expire-old-events"], rules["expire-old-committed-index"]
    assert _one(parts["filter"])["prefix"] == "${local.events_prefix}events/"
    assert _one(index["filter"])["prefix"] == f"${{local.events_prefix}}{COMMITTED_DIR}/"
    assert parts["status"] == index["status"]
    assert "var.expire_after_days - 1" in _one(index["expiration"])["days"]
    assert "var.expire_after_days :" in _one(parts["expiration"])["days"]
    condition = _one(tf["variable"]["expire_after_days"]["validation"])["condition"]
    assert "var.expire_after_days == 0 || var.expire_after_days >= 2" in condition


def _render(template: str, values: dict[str, object]) -> str:
    """templatefile's ${name} interpolation, for the plain names the boot script uses."""
    return re.sub(r"(?<!\$)\$\{(\w+)\}", lambda m: str(values[m.group(1)]), template)


VALUES = {
    "region": "eu-west-1",
    "bucket": "my-team-temu-ng-events",
    "prefix": "temu-ng/v1",
    "workers": 8,
    "events": 500000,  # the perf boot script's
    "size_flag": "--events 500000",
    "wheel_key": "_artifacts/temu_ng_eventgen-0.1.0-py3-none-any.whl",
    "log_group": "/temu-ng-eventgen/runner",
}


def test_perf_instances_are_locked_down_like_the_runner(tf):
    perf = tf["resource"][("aws_instance", "perf")]
    assert perf["for_each"] == "${toset(var.perf_instance_types)}"
    assert _one(perf["metadata_options"])["http_tokens"] == "required"
    assert _one(perf["root_block_device"])["encrypted"] is True
    assert perf["instance_initiated_shutdown_behavior"] == "terminate"
    assert "key_name" not in perf


def test_perf_user_data_renders_to_valid_bash_and_uploads_results(tmp_path):
    template = (TF / "perf_user_data.sh.tftpl").read_text()
    values = VALUES | {"instance_type": "c7g.2xlarge"}
    script = _render(template, values)
    path = tmp_path / "perf.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    assert "perf/bench.py --events 500000 --instance-type 'c7g.2xlarge'" in script
    assert "s3://my-team-temu-ng-events/temu-ng/v1/perf/c7g.2xlarge/results.json" in script
    bench_args = subprocess.run(
        [sys.executable, str(TF.parent / "perf" / "bench.py"), "--help"], capture_output=True, text=True
    )
    assert "--instance-type" in bench_args.stdout and "--events" in bench_args.stdout


@pytest.mark.parametrize("size_flag", ["--events 500000", "--duration 1h"])
def test_user_data_renders_to_valid_bash_whose_gen_command_the_cli_accepts(tmp_path, capsys, size_flag):
    template = (TF / "user_data.sh.tftpl").read_text()
    names = set(re.findall(r"(?<!\$)\$\{(\w+)\}", template))
    assert names <= set(VALUES), names - set(VALUES)
    script = _render(template, VALUES | {"size_flag": size_flag})
    path = tmp_path / "user_data.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    command = re.search(r"/opt/gen/bin/gen (run .*?)\n(?!\s)", script.replace("\\\n", " "), re.S).group(1)
    args = shlex.split(command)
    args[args.index("--out") + 1] = str(tmp_path / "shards")
    assert main([*args, "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["bucket"] == VALUES["bucket"] and plan["workers"] == min(8, plan["shards"])
    if size_flag.startswith("--events"):
        assert plan["options"]["events"] == 500000 and plan["options"]["duration"] is None
    else:
        assert plan["options"]["events"] is None and plan["options"]["duration"] == "1h"
    assert "poweroff" in script
    # Before it, the runner pulls the timeline from the same bucket, prefix and output root (and only then runs).
    pull = shlex.split(re.search(r"/opt/gen/bin/gen (pull .*?) &&", script.replace("\\\n", " ")).group(1))
    run_args = shlex.split(command)
    for flag in ("--out", "--bucket", "--prefix", "--region"):
        assert pull[pull.index(flag) + 1] == run_args[run_args.index(flag) + 1], flag


# AWS authorizes S3 operations by IAM actions (HeadObject by s3:GetObject, the multipart calls by s3:PutObject, ...;
# there is no IAM action s3:HeadObject). moto 5.2.6 authorizes S3 by the operation's own name instead (its 2024 fix
# for HeadObject, getmoto/moto#8334, undone). Where our policy grants an IAM action, the rendering for moto also
# grants the names moto asks for the operations that action covers, so the test checks our policy on either moto.
_MOTO_OPERATION_NAMES = {
    "s3:GetObject": ["s3:HeadObject"],
    "s3:PutObject": ["s3:CreateMultipartUpload", "s3:UploadPart", "s3:CompleteMultipartUpload"],
    "s3:ListBucket": ["s3:ListObjectsV2"],
    "s3:ListBucketMultipartUploads": ["s3:ListMultipartUploads"],
}


def _policy_json(tf: dict, bucket: str, prefix: str) -> str:
    """The runner's policy as Terraform renders it, for one bucket and prefix (the S3 statements)."""
    arn = f"arn:aws:s3:::{bucket}"
    values = {
        "${aws_s3_bucket.events.arn}": arn,
        "${local.events_prefix}": f"{prefix}/",
        "${local.wheel_key}": "_artifacts/gen.whl",
    }

    def render(text: str) -> str:
        for k, v in values.items():
            text = text.replace(k, v)
        return text

    statements = []
    for s in tf["data"][("aws_iam_policy_document", "runner")]["statement"]:
        if not all(r.startswith("${aws_s3_bucket") for r in s["resources"]):
            continue  # logs and KMS statements: not exercised here
        st = {
            "Sid": s["sid"],
            "Effect": s.get("effect", "Allow"),
            "Action": s["actions"] + [op for a in s["actions"] for op in _MOTO_OPERATION_NAMES.get(a, [])],
            "Resource": [render(r) for r in s["resources"]],
        }
        if "condition" in s:
            c = _one(s["condition"])
            st["Condition"] = {c["test"]: {c["variable"]: [render(v) for v in c["values"]]}}
        statements.append(st)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def test_the_role_policy_lets_the_generator_upload_and_nothing_more(tf, tmp_path, monkeypatch):
    """The policy Terraform declares, attached in moto with IAM enforcement on: a real multipart upload under
    the prefix succeeds; deletes, writes outside the prefix and other buckets are denied. (moto does not evaluate
    the s3:prefix condition on listing: that scoping is asserted statically above.)"""
    import boto3
    import botocore.exceptions
    from moto import mock_aws
    from moto.core import set_initial_no_auth_action_count

    from generator.uploader import S3Target, Uploader

    for k, v in {
        "AWS_ACCESS_KEY_ID": "admin",
        "AWS_SECRET_ACCESS_KEY": "admin",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    big = tmp_path / "part.parquet"
    big.write_bytes(os.urandom(6 * 1024 * 1024))

    @set_initial_no_auth_action_count(6)
    def scenario():
        admin_s3 = boto3.client("s3", region_name="us-east-1")
        admin_s3.create_bucket(Bucket="lake-bucket")
        admin_s3.create_bucket(Bucket="other-bucket")
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_user(UserName="runner")
        iam.put_user_policy(
            UserName="runner", PolicyName="generator", PolicyDocument=_policy_json(tf, "lake-bucket", "temu-ng/v1")
        )
        key = iam.create_access_key(UserName="runner")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        runner = boto3.session.Session().client("s3", region_name="us-east-1")  # fresh credentials

        uploader = Uploader(S3Target("lake-bucket", "temu-ng/v1"), chunk=5 * 1024 * 1024)
        uploader.preflight()  # a listing under the prefix
        uploader.submit(big, "events/dt=2025-11-01/part-00000-r.parquet", hashlib.sha256(big.read_bytes()).hexdigest())
        checksums = uploader.wait()
        uploader.put_manifest("_manifests/r.json", b"{}")
        assert uploader.open_uploads("r") == []  # what `abort` lists: the multipart uploads left under the prefix
        assert uploader._listed("temu-ng/v1/events/dt=2025-11-01/part-00000-r.parquet")  # a listing under a key
        uploader.close()
        assert checksums["events/dt=2025-11-01/part-00000-r.parquet"].endswith("-2"), "multipart, allowed"

        denied = [
            lambda: runner.delete_object(Bucket="lake-bucket", Key="temu-ng/v1/_manifests/r.json"),
            lambda: runner.put_object(Bucket="lake-bucket", Key="elsewhere/x", Body=b"x"),
            lambda: runner.put_object(Bucket="other-bucket", Key="temu-ng/v1/x", Body=b"x"),
            lambda: runner.get_object(Bucket="other-bucket", Key="temu-ng/v1/x"),
            lambda: runner.put_bucket_policy(Bucket="lake-bucket", Policy="{}"),
            lambda: runner.delete_bucket(Bucket="lake-bucket"),
        ]
        for attempt in denied:
            with pytest.raises(botocore.exceptions.ClientError) as caught:
                attempt()
            assert caught.value.response["Error"]["Code"] in ("AccessDenied", "403"), caught.value.response

    with mock_aws():
        scenario()


def test_gen_schema_athena_declares_the_tables_glue_tf_declares(tf, capsys):
    """`gen schema --athena` (for teams that make their tables themselves) and glue.tf describe the same two
    tables: columns, partition, formats, location and every table property."""
    assert main(["schema", "--athena", "s3://my-team-events/temu-ng/v1/", "--database", "temu_ng_events"]) == 0
    statements = capsys.readouterr().out.split("\n\n")
    table = tf["resource"][("aws_glue_catalog_table", "events")]
    tables = tf["locals"]["glue_tables"]
    assert len(statements) == len(tables) == 2
    root = "s3://my-team-events/temu-ng/v1/"
    for statement, (name, spec) in zip(statements, tables.items(), strict=True):
        assert statement.startswith(f"CREATE EXTERNAL TABLE IF NOT EXISTS `temu_ng_events`.`{name}` (\n")
        columns = re.findall(r"^  `(\w+)` (\S+) COMMENT '((?:[^'\\]|\\.)*)',?$", statement, re.M)
        assert [(n, t, c.replace("\\'", "'")) for n, t, c in columns] == [
            (c["name"], c["type"], c["comment"]) for c in schema.glue_columns()
        ]
        assert "PARTITIONED BY (`dt` string)" in statement
        assert f"STORED AS INPUTFORMAT '{spec['input_format']}'" in statement
        assert f"OUTPUTFORMAT '{spec['output_format']}'" in statement
        serde = _one(_one(table["storage_descriptor"])["ser_de_info"])["serialization_library"]
        assert f"ROW FORMAT SERDE '{serde}'" in statement
        assert f"LOCATION '{root}{spec['folder']}/'" in statement
        properties = dict(re.findall(r"^  '([^']+)' = '([^']*)',?$", statement, re.M))
        terraformed = {
            k: v.replace("s3://${aws_s3_bucket.events.id}/${local.events_prefix}${each.value.folder}/", "")
            for k, v in table["parameters"].items()
            if k != "EXTERNAL"  # CREATE EXTERNAL TABLE says it
        }
        assert properties.pop("storage.location.template") == f"{root}{spec['folder']}/dt=${{dt}}/"
        assert terraformed.pop("storage.location.template") == "dt=$${dt}/"
        assert properties == terraformed
