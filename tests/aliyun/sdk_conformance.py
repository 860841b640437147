"""The official Alibaba Cloud Python SDK against the cfxm emulator.

Run by tests/aliyun/sdk.rs with EMULATOR_ENDPOINT (host:port), EMULATOR_ACCESS_KEY_ID,
EMULATOR_ACCESS_KEY_SECRET, PUBLIC_KEY and FINGERPRINT (from `ssh-keygen -l -E md5`). For each
signing mode (V3, the SDK's default, then signature_algorithm="v2"): VPC, vSwitch, security group
and rules, key pair, 5 tagged instances, DescribeInstances by tag in pages of 2, a NoStock error,
and the deletion of everything. Then a wrong secret. Any mismatch raises (non-zero exit).
"""

import base64
import hashlib
import json
import os
import sys
import time
import urllib.request

from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi.models import Config
from alibabacloud_vpc20160428 import models as vpc_models
from alibabacloud_vpc20160428.client import Client as VpcClient

ENDPOINT = os.environ["EMULATOR_ENDPOINT"]
KEY_ID = os.environ["EMULATOR_ACCESS_KEY_ID"]
SECRET = os.environ["EMULATOR_ACCESS_KEY_SECRET"]
PUBLIC_KEY = os.environ["PUBLIC_KEY"]
FINGERPRINT = os.environ["FINGERPRINT"]
REGION = "ap-southeast-1"
ZONE = "ap-southeast-1b"
TYPE = "ecs.g8i.2xlarge"
TAGS = [("conflux-massive-test", "true"), ("user", "sdk"), ("cfxm-spec", "sdk-test")]


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def config(secret, algorithm):
    cfg = Config(
        access_key_id=KEY_ID,
        access_key_secret=secret,
        endpoint=ENDPOINT,
        protocol="http",
        region_id=REGION,
    )
    if algorithm:
        cfg.signature_algorithm = algorithm
    return cfg


def control(path, body):
    req = urllib.request.Request(
        f"http://{ENDPOINT}{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def wait_for(what, probe, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if probe():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def scenario(mode, algorithm):
    ecs = EcsClient(config(SECRET, algorithm))
    vpc_api = VpcClient(config(SECRET, algorithm))
    name = f"conflux-massive-test-sdk-{mode}"

    regions = ecs.describe_regions(ecs_models.DescribeRegionsRequest()).body.regions.region
    expect(any(r.region_id == REGION for r in regions), "DescribeRegions lists the region")

    # VPC, asynchronous: wait for Available as Terraform does.
    vpc = vpc_api.create_vpc(
        vpc_models.CreateVpcRequest(
            region_id=REGION,
            cidr_block="10.0.0.0/16",
            vpc_name=name,
            client_token=f"sdk-vpc-{mode}",
            tag=[vpc_models.CreateVpcRequestTag(key=k, value=v) for k, v in TAGS],
        )
    ).body
    expect(vpc.vpc_id.startswith("vpc-") and vpc.vrouter_id, "CreateVpc answers ids")

    def vpc_available():
        vs = vpc_api.describe_vpcs(vpc_models.DescribeVpcsRequest(region_id=REGION, vpc_id=vpc.vpc_id)).body
        return vs.total_count == 1 and vs.vpcs.vpc[0].status == "Available"

    wait_for("the VPC", vpc_available)
    listed = vpc_api.describe_vpcs(vpc_models.DescribeVpcsRequest(region_id=REGION, vpc_id=vpc.vpc_id)).body.vpcs.vpc[0]
    expect({(t.key, t.value) for t in listed.tags.tag} == set(TAGS), "VPC tags in the Key/Value shape")

    vsw_id = vpc_api.create_vswitch(
        vpc_models.CreateVSwitchRequest(
            region_id=REGION, vpc_id=vpc.vpc_id, zone_id=ZONE, cidr_block="10.0.16.0/20", v_switch_name=name
        )
    ).body.v_switch_id

    def vsw_available():
        s = vpc_api.describe_vswitches(vpc_models.DescribeVSwitchesRequest(region_id=REGION, v_switch_id=vsw_id)).body
        return s.total_count == 1 and s.v_switches.v_switch[0].status == "Available"

    wait_for("the vSwitch", vsw_available)

    # Security group and rules.
    sg_id = ecs.create_security_group(
        ecs_models.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc.vpc_id, security_group_name=name)
    ).body.security_group_id
    ecs.authorize_security_group(
        ecs_models.AuthorizeSecurityGroupRequest(
            region_id=REGION,
            security_group_id=sg_id,
            permissions=[
                ecs_models.AuthorizeSecurityGroupRequestPermissions(
                    ip_protocol="tcp", port_range="22/22", source_cidr_ip="0.0.0.0/0", policy="accept"
                ),
                ecs_models.AuthorizeSecurityGroupRequestPermissions(
                    ip_protocol="tcp", port_range="1024/49151", source_cidr_ip="0.0.0.0/0"
                ),
            ],
        )
    )
    perms = ecs.describe_security_group_attribute(
        ecs_models.DescribeSecurityGroupAttributeRequest(region_id=REGION, security_group_id=sg_id)
    ).body.permissions.permission
    expect(sorted(p.port_range for p in perms) == ["1024/49151", "22/22"], f"rules: {[p.port_range for p in perms]}")

    # Key pair: the fingerprint is the MD5 of the key blob.
    blob = base64.b64decode(PUBLIC_KEY.split()[1])
    md5 = hashlib.md5(blob).hexdigest()
    expect(md5 == FINGERPRINT, "the test's fingerprint is the MD5 of the blob")
    kp = ecs.import_key_pair(
        ecs_models.ImportKeyPairRequest(region_id=REGION, key_pair_name=name, public_key_body=PUBLIC_KEY)
    ).body
    expect(kp.key_pair_finger_print == md5, f"ImportKeyPair fingerprint {kp.key_pair_finger_print} != {md5}")
    found = ecs.describe_key_pairs(ecs_models.DescribeKeyPairsRequest(region_id=REGION, key_pair_name=name)).body
    expect(found.total_count == 1 and found.key_pairs.key_pair[0].key_pair_finger_print == md5, "DescribeKeyPairs")

    images = ecs.describe_images(
        ecs_models.DescribeImagesRequest(
            region_id=REGION, image_name="conflux-docker-registry", image_owner_alias="self", page_size=50
        )
    ).body
    expect(images.total_count == 1, "the account image exists")
    image_id = images.images.image[0].image_id

    # Five tagged instances.
    run = ecs.run_instances(
        ecs_models.RunInstancesRequest(
            region_id=REGION,
            zone_id=ZONE,
            image_id=image_id,
            instance_type=TYPE,
            security_group_id=sg_id,
            v_switch_id=vsw_id,
            key_pair_name=name,
            instance_name=name,
            internet_max_bandwidth_out=100,
            internet_charge_type="PayByTraffic",
            instance_charge_type="PostPaid",
            system_disk=ecs_models.RunInstancesRequestSystemDisk(category="cloud_essd", size="40"),
            amount=5,
            min_amount=1,
            client_token=f"sdk-run-{mode}",
            tag=[ecs_models.RunInstancesRequestTag(key=k, value=v) for k, v in TAGS],
        )
    ).body
    ids = run.instance_id_sets.instance_id_set
    expect(len(ids) == 5, f"RunInstances created {len(ids)}")

    # DescribeInstances by tag, two per page, following NextToken.
    seen, pages, token = [], 0, None
    while True:
        page = ecs.describe_instances(
            ecs_models.DescribeInstancesRequest(
                region_id=REGION,
                max_results=2,
                next_token=token,
                tag=[ecs_models.DescribeInstancesRequestTag(key="cfxm-spec", value="sdk-test")],
            )
        ).body
        pages += 1
        for inst in page.instances.instance:
            expect(inst.status in ("Pending", "Starting", "Running"), inst.status)
            expect(inst.public_ip_address.ip_address and inst.vpc_attributes.private_ip_address.ip_address, "addresses")
            expect({(t.tag_key, t.tag_value) for t in inst.tags.tag} == set(TAGS), "ECS tags in the TagKey/TagValue shape")
            seen.append(inst.instance_id)
        token = page.next_token
        if not token:
            break
    expect(pages == 3 and sorted(seen) == sorted(ids), f"{pages} pages, {len(seen)} instances")

    statuses = ecs.describe_instance_status(
        ecs_models.DescribeInstanceStatusRequest(region_id=REGION, instance_id=ids)
    ).body
    expect(statuses.total_count == 5, "DescribeInstanceStatus")

    # A stock-out the SDK parses: code, HTTP status, request id.
    control("/_emulator/stock", {"zone": ZONE, "instance_type": "ecs.g7.2xlarge", "count": 0})
    try:
        ecs.run_instances(
            ecs_models.RunInstancesRequest(
                region_id=REGION,
                image_id=image_id,
                instance_type="ecs.g7.2xlarge",
                security_group_id=sg_id,
                v_switch_id=vsw_id,
                amount=2,
            )
        )
        raise AssertionError("RunInstances on a sold-out type succeeded")
    except AssertionError:
        raise
    except Exception as e:  # the SDK's ClientException
        expect(type(e).__name__ == "ClientException", f"exception type {type(e).__name__}")
        expect(e.code == "OperationDenied.NoStock", f"code {e.code}")
        expect(e.status_code == 403, f"status {e.status_code}")
        expect(e.request_id, "request id")
        expect(e.data.get("statusCode") == 403 and e.data.get("Recommend"), f"data {e.data}")

    # Delete everything, waiting where the cloud is asynchronous.
    ecs.delete_instances(ecs_models.DeleteInstancesRequest(region_id=REGION, instance_id=ids, force=True))

    def gone():
        body = ecs.describe_instances(
            ecs_models.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps(ids))
        ).body
        return not body.instances.instance

    wait_for("the instances to be released", gone)
    ecs.delete_key_pairs(ecs_models.DeleteKeyPairsRequest(region_id=REGION, key_pair_names=json.dumps([name])))
    ecs.delete_security_group(ecs_models.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=sg_id))
    vpc_api.delete_vswitch(vpc_models.DeleteVSwitchRequest(region_id=REGION, v_switch_id=vsw_id))
    vpc_api.delete_vpc(vpc_models.DeleteVpcRequest(region_id=REGION, vpc_id=vpc.vpc_id))
    left = vpc_api.describe_vpcs(vpc_models.DescribeVpcsRequest(region_id=REGION)).body.total_count
    expect(left == 0, f"{left} VPCs left")
    control("/_emulator/stock", {"zone": ZONE, "instance_type": "ecs.g7.2xlarge", "count": 100})
    print(f"OK {mode}")


def wrong_secret():
    for algorithm in (None, "v2"):
        ecs = EcsClient(config("not-the-secret", algorithm))
        try:
            ecs.describe_regions(ecs_models.DescribeRegionsRequest())
            raise AssertionError("a wrong secret was accepted")
        except AssertionError:
            raise
        except Exception as e:
            expect(e.code == "SignatureDoesNotMatch", f"code {getattr(e, 'code', e)}")
            expect(e.status_code == 400, f"status {e.status_code}")
    print("OK wrong-secret")


if __name__ == "__main__":
    scenario("v3", None)
    scenario("v2", "v2")
    wrong_secret()
    sys.exit(0)
