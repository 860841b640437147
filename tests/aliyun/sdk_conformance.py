"""The official Alibaba Cloud Python SDK against the cfxm emulator.

Run by tests/aliyun/sdk.rs with EMULATOR_ENDPOINT (host:port), EMULATOR_ACCESS_KEY_ID,
EMULATOR_ACCESS_KEY_SECRET, PUBLIC_KEY and FINGERPRINT (from `ssh-keygen -l -E md5`). For each
signing mode (V3, the SDK's default, then signature_algorithm="v2"): VPC, vSwitch, security group
and rules, key pair, 5 tagged instances, DescribeInstances by tag in pages of 2, a NoStock error,
and the deletion of everything. Then, per mode again, a replay of the original tool's provisioning
through the ECS client alone (`original_tool_replay`). Then a wrong secret. Any mismatch raises
(non-zero exit).
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


def original_tool_replay(mode, algorithm):
    """The original tool's provisioning (reference/original-tool.md §1.3-§1.5, §3.1), call for
    call: every call through a fresh ECS 2014-05-26 client (no VPC client, as the tool), the
    network built with the ECS API's legacy VPC actions, number paging with PageSize=50 until
    TotalCount is covered, its RunInstances parameters, its describe loop by an `InstanceIds`
    JSON array, and its cleanup. Its waits run on the emulated clock: the emulator's clock is
    frozen, the networks take 3 s and boots 30 s (as the real cloud), and each of the tool's
    sleeps advances the clock instead of sleeping, so every intermediate state is seen for sure
    and the replay takes no real time."""
    user_tag = f"replay-{mode}"
    infra = f"conflux-massive-test-{user_tag}"
    tags = [("conflux-massive-test", "true"), ("user", user_tag), ("team", "core")]

    def client():
        return EcsClient(config(SECRET, algorithm))

    def sleep(seconds):
        control("/_emulator/clock", {"advance_ms": int(seconds * 1000)})

    def poll(what, probe, every, timeout):
        waited = 0.0
        while waited <= timeout:
            if probe():
                return
            sleep(every)
            waited += every
        raise AssertionError(f"timed out waiting for {what}")

    def all_pages(fetch, items):
        rows, page = [], 1
        while True:
            body = fetch(page)
            expect(isinstance(body.total_count, int), f"TotalCount in every page: {body.total_count!r}")
            rows.extend(items(body))
            if body.total_count <= page * 50:
                return rows
            page += 1

    def ensure_infra():
        """One region's infra phase; returns what it found or created, and what it created."""
        created = []
        zones = [
            z.zone_id
            for z in client().describe_zones(ecs_models.DescribeZonesRequest(region_id=REGION, verbose=False)).body.zones.zone
        ]
        expect(zones == [f"{REGION}{c}" for c in "abc"], f"zones {zones}")

        images = all_pages(
            lambda n: client()
            .describe_images(
                ecs_models.DescribeImagesRequest(
                    region_id=REGION,
                    image_name="conflux-docker-registry",
                    image_owner_alias="self",
                    page_number=n,
                    page_size=50,
                )
            )
            .body,
            lambda b: b.images.image,
        )
        image_id = [i.image_id for i in images if i.image_name == "conflux-docker-registry"][0]

        vpcs = all_pages(
            lambda n: client().describe_vpcs(ecs_models.DescribeVpcsRequest(region_id=REGION, page_number=n, page_size=50)).body,
            lambda b: b.vpcs.vpc,
        )
        mine = [v.vpc_id for v in vpcs if v.vpc_name == infra]
        if mine:
            vpc_id = mine[0]
        else:
            vpc_id = client().create_vpc(ecs_models.CreateVpcRequest(region_id=REGION, vpc_name=infra, cidr_block="10.0.0.0/16")).body.vpc_id
            created.append(vpc_id)
            seen = []

            def vpc_available():
                vs = client().describe_vpcs(ecs_models.DescribeVpcsRequest(region_id=REGION, vpc_id=vpc_id)).body.vpcs.vpc
                seen.append(vs[0].status if vs else None)
                return bool(vs) and vs[0].status == "Available"

            poll("the VPC", vpc_available, 3, 120)
            expect(seen == ["Pending", "Available"], f"VPC states {seen}")

        groups = all_pages(
            lambda n: client()
            .describe_security_groups(
                ecs_models.DescribeSecurityGroupsRequest(region_id=REGION, vpc_id=vpc_id, page_number=n, page_size=50)
            )
            .body,
            lambda b: b.security_groups.security_group,
        )
        mine = [g.security_group_id for g in groups if g.security_group_name == infra]
        if mine:
            sg_id = mine[0]
        else:
            sg_id = client().create_security_group(
                ecs_models.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id, security_group_name=infra)
            ).body.security_group_id
            created.append(sg_id)
            client().authorize_security_group(
                ecs_models.AuthorizeSecurityGroupRequest(
                    region_id=REGION,
                    security_group_id=sg_id,
                    permissions=[
                        ecs_models.AuthorizeSecurityGroupRequestPermissions(
                            ip_protocol="tcp", port_range="22/22", source_cidr_ip="0.0.0.0/0"
                        ),
                        ecs_models.AuthorizeSecurityGroupRequestPermissions(
                            ip_protocol="tcp", port_range="1024/49151", source_cidr_ip="0.0.0.0/0"
                        ),
                    ],
                )
            )

        md5 = hashlib.md5(base64.b64decode(PUBLIC_KEY.split()[1])).hexdigest()

        def key_pairs():
            return all_pages(
                lambda n: client()
                .describe_key_pairs(
                    ecs_models.DescribeKeyPairsRequest(region_id=REGION, key_pair_name=infra, page_number=n, page_size=50)
                )
                .body,
                lambda b: b.key_pairs.key_pair,
            )

        found = key_pairs()
        expect(len(found) <= 1, "at most one key pair of that name")
        if not found:
            client().import_key_pair(
                ecs_models.ImportKeyPairRequest(region_id=REGION, key_pair_name=infra, public_key_body=PUBLIC_KEY)
            )
            created.append(infra)
            poll("the key pair", lambda: [k.key_pair_finger_print for k in key_pairs()] == [md5], 3, 10)
        else:
            expect(found[0].key_pair_finger_print == md5, "the key pair's fingerprint matches the local key")

        vsws = all_pages(
            lambda n: client()
            .describe_vswitches(ecs_models.DescribeVSwitchesRequest(region_id=REGION, vpc_id=vpc_id, page_number=n, page_size=50))
            .body,
            lambda b: b.v_switches.v_switch,
        )
        by_zone = {}
        for s in vsws:
            if s.v_switch_name == infra:
                expect(s.status.lower() == "available", f"managed vSwitch {s.v_switch_id} is {s.status}")
                by_zone[s.zone_id] = s.v_switch_id
        used = [s.cidr_block for s in vsws]
        for zone in zones:
            if zone in by_zone:
                continue
            # The first /20 of 10.0.0.0/16 that no vSwitch of the VPC uses.
            cidr = next(f"10.0.{16 * i}.0/20" for i in range(16) if f"10.0.{16 * i}.0/20" not in used)
            used.append(cidr)
            vsw_id = client().create_vswitch(
                ecs_models.CreateVSwitchRequest(region_id=REGION, vpc_id=vpc_id, zone_id=zone, v_switch_name=infra, cidr_block=cidr)
            ).body.v_switch_id
            created.append(vsw_id)
            seen = []

            def vsw_available():
                body = client().describe_vswitches(ecs_models.DescribeVSwitchesRequest(region_id=REGION, v_switch_id=vsw_id)).body
                expect(body.total_count == len(body.v_switches.v_switch), "TotalCount by VSwitchId")
                seen.append(body.v_switches.v_switch[0].status if body.v_switches.v_switch else None)
                return seen[-1] == "Available"

            poll("the vSwitch", vsw_available, 3, 120)
            expect(seen == ["Pending", "Available"], f"vSwitch states {seen}")
            by_zone[zone] = vsw_id
        return dict(zones=zones, image_id=image_id, vpc_id=vpc_id, sg_id=sg_id, vswitches=by_zone), created

    region_info, created = ensure_infra()
    expect(len(created) == 6, f"created VPC, group, key pair and 3 vSwitches: {created}")
    again, created = ensure_infra()
    expect(again == region_info and not created, f"a second run reuses everything: {created}")

    # Step A: 4 hosts in the first zone that takes them; the first zone is sold out.
    control("/_emulator/stock", {"zone": region_info["zones"][0], "instance_type": TYPE, "count": 0})
    ids, placed = [], None
    for zone in region_info["zones"]:
        try:
            ids = client().run_instances(
                ecs_models.RunInstancesRequest(
                    region_id=REGION,
                    zone_id=zone,
                    image_id=region_info["image_id"],
                    instance_type=TYPE,
                    security_group_id=region_info["sg_id"],
                    v_switch_id=region_info["vswitches"][zone],
                    key_pair_name=infra,
                    instance_name=f"conflux-massive-test-{int(time.time())}",
                    internet_max_bandwidth_out=100,
                    internet_charge_type="PayByTraffic",
                    instance_charge_type="PostPaid",
                    tag=[ecs_models.RunInstancesRequestTag(key=k, value=v) for k, v in tags],
                    amount=4,
                    min_amount=1,
                    system_disk=ecs_models.RunInstancesRequestSystemDisk(size="40", category="cloud_essd"),
                )
            ).body.instance_id_sets.instance_id_set
        except Exception as e:
            expect(getattr(e, "code", None) == "OperationDenied.NoStock", f"RunInstances in {zone}: {e}")
            continue
        placed = zone
        break
    expect(len(ids) == 4 and placed == region_info["zones"][1], f"{len(ids)} instances in the second zone")

    # The describe loop: every tracked id must be listed at once (else "lost"); a Running one
    # without a public IP would raise IndexError, as in the tool.
    running, states = {}, set()
    polls = 0
    while len(running) < len(ids):
        pending = [i for i in ids if i not in running]
        for chunk in (pending[i : i + 100] for i in range(0, len(pending), 100)):
            listed = client().describe_instances(
                ecs_models.DescribeInstancesRequest(region_id=REGION, page_size=100, instance_ids=json.dumps(chunk))
            ).body.instances.instance
            expect(sorted(i.instance_id for i in listed) == sorted(chunk), f"lost instances after {polls} polls")
            for inst in listed:
                states.add(inst.status)
                if inst.status == "Running":
                    running[inst.instance_id] = (
                        inst.public_ip_address.ip_address[0],
                        inst.vpc_attributes.private_ip_address.ip_address[0],
                        inst.zone_id,
                    )
                else:
                    expect(inst.status in ("Starting", "Pending", "Stopped"), f"status {inst.status}")
            sleep(0.5)
        polls += 1
        expect(polls <= 20, "instances never reached Running")
        if len(running) < len(ids):
            sleep(3)
    expect({"Pending", "Starting", "Running"} <= states, f"states seen: {states}")
    expect(len({ip for ip, _, _ in running.values()}) == 4, "distinct public IPs")
    hosts = [
        dict(ip=ip, nodes_per_host=1, ssh_user="root", ssh_key_path="./keys/ssh-key.pem", provider="aliyun",
             region=REGION, zone=zone, instance_id=iid, private_ip=private)
        for iid, (ip, private, zone) in running.items()
    ]
    expect(all(h["private_ip"].startswith("10.0.") and h["zone"] == placed for h in hosts), f"hosts {hosts}")

    # Cleanup (§3.1): every instance in the region, 50 a page, kept by tag, deleted 100 at a time.
    listed = all_pages(
        lambda n: client().describe_instances(ecs_models.DescribeInstancesRequest(region_id=REGION, page_number=n, page_size=50)).body,
        lambda b: b.instances.instance,
    )
    doomed = [
        i.instance_id
        for i in listed
        if {(t.tag_key, t.tag_value) for t in i.tags.tag} >= {("conflux-massive-test", "true")}
        and any(t.tag_key == "user" and t.tag_value.startswith(user_tag) for t in i.tags.tag)
    ]
    expect(sorted(doomed) == sorted(ids), f"cleanup finds exactly its instances: {len(doomed)}")
    for chunk in (doomed[i : i + 100] for i in range(0, len(doomed), 100)):
        client().delete_instances(ecs_models.DeleteInstancesRequest(region_id=REGION, force_stop=True, force=True, instance_id=chunk))
    # The tool keeps its network for reuse; the test removes it, still through the ECS client.
    for vsw_id in region_info["vswitches"].values():
        client().delete_vswitch(ecs_models.DeleteVSwitchRequest(region_id=REGION, v_switch_id=vsw_id))
    client().delete_security_group(ecs_models.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=region_info["sg_id"]))
    client().delete_vpc(ecs_models.DeleteVpcRequest(region_id=REGION, vpc_id=region_info["vpc_id"]))
    client().delete_key_pairs(ecs_models.DeleteKeyPairsRequest(region_id=REGION, key_pair_names=json.dumps([infra])))
    left = client().describe_vpcs(ecs_models.DescribeVpcsRequest(region_id=REGION, vpc_id=region_info["vpc_id"])).body
    expect(left.total_count == 0 and not left.vpcs.vpc, "the VPC is gone")
    control("/_emulator/stock", {"zone": region_info["zones"][0], "instance_type": TYPE, "count": 3000})
    print(f"OK original-{mode}")


def original_tool_replays():
    """Both signing modes, on a frozen clock with the real cloud's delays; restored after."""
    control("/_emulator/faults", {"clock_speed": 0, "network_delay_ms": 3000, "boot_delay_ms": 30000})
    try:
        original_tool_replay("v3", None)
        original_tool_replay("v2", "v2")
    finally:
        control("/_emulator/faults", {"clock_speed": 1, "network_delay_ms": 0, "boot_delay_ms": 0})


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
    original_tool_replays()
    wrong_secret()
    sys.exit(0)
