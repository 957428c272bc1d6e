"""How the centre reaches its MQTT broker: the address, the login, TLS with the centre's own certificate."""

from __future__ import annotations

import argparse
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiomqtt


@dataclass(frozen=True)
class BrokerAddress:
    """Where the centre's broker is and how to log in to it."""

    host: str
    port: int = 1883
    username: str | None = None
    password_file: str | None = None
    tls_ca_file: str | None = None
    connect_timeout_s: float = 5.0
    client_cert_file: str | None = None  # the centre's own certificate (deploy/mosquitto/centre.conf asks for one)
    client_key_file: str | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """HOST:PORT, [V6]:PORT or HOST alone; ValueError in words a person reads."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected [ADDRESS]:PORT")
        port = rest[1:]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"{text!r}: no host")
    if not port:
        return host, default_port
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def mqtt_client(broker: BrokerAddress, keepalive: int = 10) -> aiomqtt.Client:
    """An MQTT 5 client for `broker`: password from its file, TLS when a CA is given (with the client certificate)."""
    password = Path(broker.password_file).read_text().strip() if broker.password_file else None
    tls = None
    if broker.tls_ca_file:
        tls = ssl.create_default_context(cafile=broker.tls_ca_file)
        if broker.client_cert_file:
            tls.load_cert_chain(broker.client_cert_file, broker.client_key_file)
    return aiomqtt.Client(broker.host, broker.port, username=broker.username, password=password,
                          protocol=aiomqtt.ProtocolVersion.V5, timeout=broker.connect_timeout_s,
                          tls_context=tls, keepalive=keepalive)


def add_login_options(parser: argparse.ArgumentParser) -> None:
    """How to log in to the broker: user and password file, or TLS with the centre's certificate."""
    parser.add_argument("--username")
    parser.add_argument("--password-file", help="a file holding the broker password (never on the command line)")
    parser.add_argument("--tls-ca", help="connect over TLS, checking the broker against this CA file")
    parser.add_argument("--client-cert", help="with --tls-ca: the centre's certificate (PEM), its identity at the broker")
    parser.add_argument("--client-key", help="the private key of --client-cert (PEM)")
    parser.add_argument("--connect-timeout", type=float, default=5.0, metavar="S")


def broker_from(args: argparse.Namespace, default_port: int = 1883) -> BrokerAddress:
    """The broker named by --broker and the login options; ValueError in words when they do not fit."""
    if (args.client_cert or args.client_key) and not (args.client_cert and args.client_key and args.tls_ca):
        raise ValueError("--client-cert and --client-key go together, and with --tls-ca")
    host, port = parse_host_port(args.broker, default_port)
    return BrokerAddress(host, port, args.username, args.password_file, args.tls_ca, args.connect_timeout,
                         args.client_cert, args.client_key)
