#!/usr/bin/env python3
"""Independent OPC UA server ("the machine controller") for mes-edge integration tests.

Written against asyncua==2.1.0 (pinned in tests/peers/requirements.txt).

Usage:
    opcua_server.py --port 4840 --dir DIR [--security none|secure|all] [--user NAME:PASSWORD]
                    [--x509-user] [--init FILE.json] [--extra-namespaces N] [--new-cert]
                    [--hostile-argument]

Once the server listens, prints exactly one line ``READY <port>`` to stdout and flushes.
Exits 0 on SIGTERM or SIGINT (the end of stdin does not stop it). Exits non-zero without READY
if it cannot listen.

Endpoint: opc.tcp://127.0.0.1:<port>/ . Security (``--security``):
    none    only None/None
    secure  only Basic256Sha256, Aes128_Sha256_RsaOaep and Aes256_Sha256_RsaPss, each with
            Sign and SignAndEncrypt
    all     both of the above (default)
The server's certificate and key live in DIR (server-cert.der, server-key.pem); they are made
on the first start and kept, so a restart presents the same certificate, unless ``--new-cert``
makes a new one (a server replaced or re-keyed). Its subject alternative names are the
application URI, DNS localhost, DNS/IP 127.0.0.1. Client certificates are accepted (the server
does not keep a trust list).

Identity: anonymous unless ``--user NAME:PASSWORD`` is given; then only that user name and
password are accepted (anonymous is refused). ``--x509-user`` also accepts an X.509 user
identity: the certificate DIR/user-cert.der (key DIR/user-key.pem, made at the first start) and
no other.

Address space, namespace URI ``urn:mes-edge:test-plc`` (its index is 2, or 2+N with
``--extra-namespaces N``, which registers N other namespaces first: a server whose namespace
array changed), under Objects/Press:

    name            node id                       type     writable
    GoodCount       s=Press.GoodCount             UInt32   yes
    ScrapCount      s=Press.ScrapCount            UInt16   yes
    State           s=Press.State                 UInt16   yes
    Temperature     s=Press.Temperature           Double   yes   (EURange 0..100)
    OrderNumber     s=Press.OrderNumber           String   yes
    TargetQuantity  s=Press.TargetQuantity        UInt32   yes
    WrongCounter    s=Press.WrongCounter          Double   yes   (a counter of the wrong type)
    StartOrder      s=Press.StartOrder            Method(order: String, quantity: UInt32)
                                                  -> accepted: Boolean; sets OrderNumber and
                                                  TargetQuantity

``--hostile-argument`` adds ``HostileArgument`` (s=Press.HostileArgument, read-only), whose
value is an Argument structure (an ExtensionObject, as a method's InputArguments hold) with
ValueRank 2147483000 and an empty ArrayDimensions: well-formed on the wire (71 bytes as a
value), but a client that pads the dimensions up to the rank, as async-opcua 0.19 does,
allocates 8.6 GB for it.

``--bulk N`` adds N more UInt32 variables, ``s=Bulk.<k>`` for k in 0..N (browse name
``<ns>:Bulk.<k>``, start value k), under Objects/Press/Bulk: a controller with many tags.
``--max-items-per-call K`` makes the server state K as its MaxMonitoredItemsPerCall operation
limit and refuse a CreateMonitoredItems call of more items with BadTooManyOperations (asyncua
states 10000 and enforces nothing by itself); ``--hidden-limit`` enforces K without stating it
(the limit node keeps asyncua's 10000). Every CreateMonitoredItems call is reported on stdout.

Browse names are ``<ns>:<name>``. ``--init FILE.json`` gives start values by name, e.g.
{"GoodCount": 41, "State": 1}.

stdin commands (one per line), each answered on stdout:
    set NAME VALUE     -> "OK set NAME"      (VALUE converted to the node's type)
    clock SECONDS      -> "OK clock"         later sets carry a source timestamp this far from
                                             the server's clock (a controller set to local time)
    clock max          -> "OK clock"         ... the latest OPC UA can say: 9999-12-31T23:59:59Z
    clock off          -> "OK clock"         ... no source timestamp of our own again
    bad NAME           -> "OK bad NAME"      the node keeps its value with status BadSensorFailure
    get NAME           -> "VALUE NAME <value>"
    bulk K VALUE       -> "OK bulk K"        sets Bulk.<k> (with --bulk)
stdout also reports what clients did:
    CREATE_ITEMS <n> ok|refused             at every CreateMonitoredItems call, its size
    WRITE NAME <value>                      after a client's write to a Press node
    CALLED StartOrder <order> <quantity>    when the method is called
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import logging
import signal
import sys
from pathlib import Path

from asyncua import Server, ua
from asyncua.common.callback import CallbackType
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NS_URI = "urn:mes-edge:test-plc"
APP_URI = "urn:mes-edge:test-plc:server"

VARIABLES = [
    # name, variant type, initial value
    ("GoodCount", ua.VariantType.UInt32, 0),
    ("ScrapCount", ua.VariantType.UInt16, 0),
    ("State", ua.VariantType.UInt16, 0),
    ("Temperature", ua.VariantType.Double, 20.0),
    ("OrderNumber", ua.VariantType.String, ""),
    ("TargetQuantity", ua.VariantType.UInt32, 0),
    ("WrongCounter", ua.VariantType.Double, 0.0),
]

SECURE = [
    ua.SecurityPolicyType.Basic256Sha256_Sign,
    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
    ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
]


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def make_certificate(
    cert_file: Path, key_file: Path, common_name: str = "mes-edge test PLC", uri: str = APP_URI
) -> None:
    """A self-signed application instance (or user) certificate as OPC UA Part 6 wants it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mes-edge tests"),
        ]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(uri),
                    x509.DNSName("localhost"),
                    x509.DNSName("127.0.0.1"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.DER))


class OneUser:
    """Accepts exactly one user name and password (and one user certificate, if given);
    anonymous is refused by the token policy when a user is set."""

    def __init__(self, name: str | None, password: str | None, cert_der: bytes | None) -> None:
        self.name = name
        self.password = password
        self.cert_der = cert_der

    def get_user(self, iserver, username=None, password=None, certificate=None):
        # asyncua passes the client's application certificate here for other tokens too, so a
        # certificate alone does not mean an X.509 user token.
        if certificate is not None and self.cert_der is not None and bytes(certificate) == self.cert_der:
            return User(role=UserRole.User, name="x509-user")
        if self.name is None:
            return User(role=UserRole.User)
        if username == self.name and password == self.password:
            return User(role=UserRole.User, name=username)
        return None


def convert(vtype: ua.VariantType, text: str):
    if vtype == ua.VariantType.String:
        return text
    if vtype in (ua.VariantType.Double, ua.VariantType.Float):
        return float(text)
    if vtype == ua.VariantType.Boolean:
        return text.lower() in ("1", "true")
    return int(text)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--security", choices=["none", "secure", "all"], default="all")
    ap.add_argument("--user")
    ap.add_argument("--x509-user", action="store_true")
    ap.add_argument("--init", type=Path)
    ap.add_argument("--extra-namespaces", type=int, default=0)
    ap.add_argument("--new-cert", action="store_true")
    ap.add_argument("--bulk", type=int, default=0)
    ap.add_argument("--hostile-argument", action="store_true")
    ap.add_argument("--max-items-per-call", type=int, default=0)
    ap.add_argument("--hidden-limit", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)

    user, password = (args.user.split(":", 1) + [None])[:2] if args.user else (None, None)
    cert_der = None
    if args.x509_user:
        user_cert, user_key = args.dir / "user-cert.der", args.dir / "user-key.pem"
        if not user_cert.is_file() or not user_key.is_file():
            make_certificate(user_cert, user_key, "mes-edge test user", "urn:mes-edge:test-user")
        cert_der = user_cert.read_bytes()
    server = Server(user_manager=OneUser(user, password, cert_der))
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{args.port}/")
    server.set_server_name("mes-edge test PLC")
    await server.set_application_uri(APP_URI)

    policies = []
    if args.security in ("none", "all"):
        policies.append(ua.SecurityPolicyType.NoSecurity)
    if args.security in ("secure", "all"):
        policies.extend(SECURE)
        cert_file, key_file = args.dir / "server-cert.der", args.dir / "server-key.pem"
        if args.new_cert or not cert_file.is_file() or not key_file.is_file():
            make_certificate(cert_file, key_file)
        await server.load_certificate(str(cert_file))
        await server.load_private_key(str(key_file))
    server.set_security_policy(policies)
    tokens = [ua.UserNameIdentityToken] if user is not None else [ua.AnonymousIdentityToken, ua.UserNameIdentityToken]
    if args.x509_user:
        tokens.append(ua.X509IdentityToken)
    server.set_identity_tokens(tokens)

    for i in range(args.extra_namespaces):
        await server.register_namespace(f"urn:mes-edge:test-plc:other-{i}")
    idx = await server.register_namespace(NS_URI)
    init = json.loads(args.init.read_text()) if args.init else {}

    objects = server.nodes.objects
    press = await objects.add_object(ua.NodeId("Press", idx), ua.QualifiedName("Press", idx))
    nodes = {}
    types = {}
    for name, vtype, value in VARIABLES:
        start = init.get(name, value)
        node = await press.add_variable(
            ua.NodeId(f"Press.{name}", idx),
            ua.QualifiedName(name, idx),
            ua.Variant(convert(vtype, str(start)) if vtype != ua.VariantType.String else str(start), vtype),
        )
        await node.set_writable()
        nodes[name] = node
        types[name] = vtype
    await nodes["Temperature"].add_property(
        ua.NodeId("Press.Temperature.EURange", idx),
        ua.QualifiedName("EURange", 0),
        ua.Range(Low=0.0, High=100.0),
    )
    by_id = {n.nodeid: name for name, n in nodes.items()}

    if args.hostile_argument:
        # Encoded by asyncua as it is: the value rank is not checked against the dimensions.
        hostile = ua.Argument(
            Name="Setup",
            DataType=ua.NodeId(ua.ObjectIds.UInt32),
            ValueRank=2147483000,
            ArrayDimensions=[],
            Description=ua.LocalizedText("dimensions padded to the rank: 8.6 GB"),
        )
        await press.add_variable(
            ua.NodeId("Press.HostileArgument", idx),
            ua.QualifiedName("HostileArgument", idx),
            ua.Variant(hostile, ua.VariantType.ExtensionObject),
        )

    bulk = []
    if args.bulk:
        # One AddNodes call for all of them: one add_variable each takes minutes on a busy machine.
        folder = await press.add_folder(ua.NodeId("Bulk", idx), ua.QualifiedName("Bulk", idx))
        items = []
        for k in range(args.bulk):
            item = ua.AddNodesItem()
            item.RequestedNewNodeId = ua.NodeId(f"Bulk.{k}", idx)
            item.BrowseName = ua.QualifiedName(f"Bulk.{k}", idx)
            item.NodeClass = ua.NodeClass.Variable
            item.ParentNodeId = folder.nodeid
            item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasComponent)
            item.TypeDefinition = ua.NodeId(ua.ObjectIds.BaseDataVariableType)
            attrs = ua.VariableAttributes()
            attrs.DisplayName = ua.LocalizedText(f"Bulk.{k}")
            attrs.DataType = ua.NodeId(ua.ObjectIds.UInt32)
            attrs.Value = ua.Variant(k, ua.VariantType.UInt32)
            attrs.ValueRank = ua.ValueRank.Scalar
            attrs.AccessLevel = ua.AccessLevel.CurrentRead.mask
            attrs.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
            item.NodeAttributes = attrs
            items.append(item)
        for result in await server.iserver.isession.add_nodes(items):
            result.StatusCode.check()
            bulk.append(server.get_node(result.AddedNodeId))

    limit = args.max_items_per_call
    if limit and not args.hidden_limit:
        await server.get_node(
            ua.NodeId(ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall)
        ).write_value(ua.Variant(limit, ua.VariantType.UInt32))
    service = server.iserver.subscription_service
    create_items = service.create_monitored_items

    async def create_items_within_limit(params):
        n = len(params.ItemsToCreate)
        if limit and n > limit:
            say(f"CREATE_ITEMS {n} refused")
            raise ServiceError(ua.StatusCodes.BadTooManyOperations)
        say(f"CREATE_ITEMS {n} ok")
        return await create_items(params)

    service.create_monitored_items = create_items_within_limit

    async def start_order(parent, order, quantity):
        say(f"CALLED StartOrder {order.Value} {quantity.Value}")
        await nodes["OrderNumber"].write_value(ua.Variant(order.Value, ua.VariantType.String))
        await nodes["TargetQuantity"].write_value(ua.Variant(quantity.Value, ua.VariantType.UInt32))
        return [ua.Variant(True, ua.VariantType.Boolean)]

    await press.add_method(
        ua.NodeId("Press.StartOrder", idx),
        ua.QualifiedName("StartOrder", idx),
        start_order,
        [ua.VariantType.String, ua.VariantType.UInt32],
        [ua.VariantType.Boolean],
    )

    async def on_write(event, _dispatcher):
        if not event.is_external:  # our own `set` commands
            return
        params = event.request_params
        results = event.response_params or []
        for k, wv in enumerate(params.NodesToWrite):
            name = by_id.get(wv.NodeId)
            ok = k < len(results) and results[k].is_good()
            if name is not None and ok and wv.AttributeId == ua.AttributeIds.Value:
                say(f"WRITE {name} {wv.Value.Value.Value}")

    server.subscribe_server_callback(CallbackType.PostWrite, on_write)

    try:
        await server.start()
    except OSError as e:
        print(f"cannot listen on port {args.port}: {e}", file=sys.stderr)
        return 2

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    say(f"READY {args.port}")

    # The source timestamps `set` gives (see `clock`): None, "max" or an offset in seconds.
    clock = {"mode": None}

    async def commands():
        reader = asyncio.StreamReader()
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        except (OSError, ValueError):
            return  # stdin is not a pipe (e.g. /dev/null): run without commands
        while True:
            line = await reader.readline()
            if not line:
                return
            parts = line.decode().strip().split(" ", 2)
            try:
                if parts[0] == "set" and len(parts) == 3:
                    name, text = parts[1], parts[2]
                    variant = ua.Variant(convert(types[name], text), types[name])
                    if clock["mode"] is None:
                        await nodes[name].write_value(variant)
                    else:
                        if clock["mode"] == "max":
                            stamp = datetime.datetime(9999, 12, 31, 23, 59, 59)
                        else:
                            stamp = datetime.datetime.now(datetime.timezone.utc).replace(
                                tzinfo=None
                            ) + datetime.timedelta(seconds=clock["mode"])
                        await nodes[name].write_value(ua.DataValue(variant, SourceTimestamp=stamp))
                    say(f"OK set {name}")
                elif parts[0] == "bad" and len(parts) == 2:
                    # The sensor failed: the value stays, its status turns Bad.
                    name = parts[1]
                    current = await nodes[name].read_data_value()
                    await nodes[name].write_value(
                        ua.DataValue(
                            current.Value,
                            StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure),
                        )
                    )
                    say(f"OK bad {name}")
                elif parts[0] == "clock" and len(parts) == 2:
                    arg = parts[1]
                    clock["mode"] = None if arg == "off" else "max" if arg == "max" else float(arg)
                    say("OK clock")
                elif parts[0] == "bulk" and len(parts) == 3:
                    await bulk[int(parts[1])].write_value(ua.Variant(int(parts[2]), ua.VariantType.UInt32))
                    say(f"OK bulk {parts[1]}")
                elif parts[0] == "get" and len(parts) == 2:
                    say(f"VALUE {parts[1]} {await nodes[parts[1]].read_value()}")
                elif parts[0]:
                    say(f"ERROR unknown command {line.decode().strip()!r}")
            except Exception as e:  # a test typo must not kill the PLC
                say(f"ERROR {e}")

    cmd_task = asyncio.create_task(commands())
    await stop.wait()
    cmd_task.cancel()
    await server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
