"""The deploy/mosquitto examples made runnable: a test CA and certificates, the configs rendered, clients."""

from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.properties import Properties

from tests.support import REPO, wait_until

EXAMPLES = REPO / "deploy" / "mosquitto"
PLACEHOLDER = re.compile(r"@[A-Z_]+@")


def render(example: str, values: dict[str, object], options: dict[str, str] | None = None) -> str:
    """An example file with every placeholder filled; `options` replaces the value of options it must contain.

    `user root` goes first: Mosquitto started as root otherwise becomes user mosquitto, who cannot read
    the test's private temporary directory.
    """
    text = "user root\n" + PLACEHOLDER.sub(lambda m: str(values[m.group(0).strip("@")]), (EXAMPLES / example).read_text())
    for option, value in (options or {}).items():
        text, count = re.subn(rf"^{option} .*$", f"{option} {value}", text, flags=re.MULTILINE)
        assert count == 1, f"{example} has no single `{option}` line to set"
    return text


# ----- a test CA ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path


class TestPki:
    """A CA and the certificates it issues (EC P-256), written under `folder`."""

    __test__ = False  # not a test class

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "barrier-supervisor test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self._ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                         .public_key(self._ca_key.public_key()).serial_number(x509.random_serial_number())
                         .not_valid_before(now - datetime.timedelta(minutes=5))
                         .not_valid_after(now + datetime.timedelta(days=1))
                         .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                         .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                      content_commitment=False, key_encipherment=False,
                                                      data_encipherment=False, key_agreement=False,
                                                      encipher_only=False, decipher_only=False), critical=True)
                         .sign(self._ca_key, hashes.SHA256()))
        self.ca_file = folder / "ca.crt"
        self.ca_file.write_bytes(self._ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, *, server: bool = False) -> Identity:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(self._ca_cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                         else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        identity = Identity(self.folder / f"{common_name}.crt", self.folder / f"{common_name}.key")
        identity.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        identity.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
        identity.key.chmod(0o600)
        return identity


# ----- brokers --------------------------------------------------------------------------------------


# ----- clients --------------------------------------------------------------------------------------


class Client:
    """An MQTT 5 client (paho, its own network thread) recording what it receives and the broker's answers."""

    def __init__(self, port: int, *, identity: Identity | None = None, ca_file: Path | None = None,
                 client_id: str = "", persistent: bool = False) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.acks: dict[int, int] = {}  # message or subscription id → the broker's reason code
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if identity is not None:
            self.client.tls_set(ca_certs=str(ca_file), certfile=str(identity.cert), keyfile=str(identity.key))
        self.client.on_message = lambda _c, _u, message: self.messages.append(message)
        self.client.on_publish = lambda _c, _u, mid, reason, _p: self.acks.__setitem__(mid, reason.value)
        self.client.on_subscribe = lambda _c, _u, mid, reasons, _p: self.acks.__setitem__(mid, reasons[0].value)
        properties = None
        if persistent:  # a session the broker keeps for an hour while this client is away
            properties = Properties(mqtt.PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect("127.0.0.1", port, clean_start=not persistent, properties=properties)
        self.client.loop_start()
        wait_until(self.client.is_connected, 10, f"client connected to {port}")

    def subscribe(self, topic: str) -> int:
        """Subscribe at QoS 1; the broker's SUBACK reason code (1 granted, 135 not authorized)."""
        _, mid = self.client.subscribe(topic, qos=1)
        return wait_until(lambda: self.acks.get(mid), 10, f"SUBACK for {topic}")

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, expiry_s: int | None = None) -> int:
        """Publish at QoS 1; the broker's PUBACK reason code (0 success, 135 not authorized)."""
        properties = None
        if expiry_s is not None:
            properties = Properties(mqtt.PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = expiry_s
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        wait_until(lambda: info.mid in self.acks, 10, f"PUBACK for {topic}")
        return self.acks[info.mid]

    def on(self, topic: str) -> list[mqtt.MQTTMessage]:
        return [m for m in list(self.messages) if m.topic == topic]

    def payloads(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.on(topic)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
