"""Mail client self-configuration documents: pure builders, no I/O.

* Thunderbird autoconfig, ``config-v1.1.xml`` (the clientConfig format of
  https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat);
* Outlook autodiscover (the ``POX`` "Autodiscover/Outlook/Responseschema/2006a"
  response with IMAP and SMTP ``Protocol`` blocks, [MS-OXDSCLI]);
* an Apple configuration profile (``com.apple.mail.managed`` payload, a
  property list), optionally signed as CMS/PKCS #7 with the server's certificate.

The login name is the address's local part (the school login); nothing here
asks whether an account exists, so no answer tells accounts apart (no
account enumeration).
"""

from __future__ import annotations

import plistlib
import uuid
from dataclasses import dataclass
from xml.etree import ElementTree as ET

AUTODISCOVER_REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
AUTODISCOVER_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


@dataclass(frozen=True)
class MailEndpoints:
    """Where the school's mail listeners are, as clients should reach them
    (0 = that listener is off and is left out)."""

    domain: str
    host: str
    school_name: str
    imaps_port: int = 993
    imap_port: int = 143
    submissions_port: int = 465
    submission_port: int = 587


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def thunderbird_config(endpoints: MailEndpoints) -> bytes:
    """``clientConfig`` version 1.1: IMAP over TLS first, then STARTTLS; likewise SMTP."""
    root = ET.Element("clientConfig", version="1.1")
    provider = _sub(root, "emailProvider")
    provider.set("id", endpoints.domain)
    _sub(provider, "domain", endpoints.domain)
    _sub(provider, "displayName", endpoints.school_name)
    _sub(provider, "displayShortName", endpoints.school_name[:40])
    servers = [("incomingServer", "imap", endpoints.imaps_port, "SSL"),
               ("incomingServer", "imap", endpoints.imap_port, "STARTTLS"),
               ("outgoingServer", "smtp", endpoints.submissions_port, "SSL"),
               ("outgoingServer", "smtp", endpoints.submission_port, "STARTTLS")]
    for tag, kind, port, socket_type in servers:
        if port <= 0:
            continue
        server = _sub(provider, tag)
        server.set("type", kind)
        _sub(server, "hostname", endpoints.host)
        _sub(server, "port", str(port))
        _sub(server, "socketType", socket_type)
        _sub(server, "authentication", "password-cleartext")
        _sub(server, "username", "%EMAILLOCALPART%")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def requested_address(body: bytes) -> str | None:
    """The ``EMailAddress`` of an autodiscover request, or None if there is none.

    Entity declarations are refused before parsing (no billion laughs: the
    standard library parser expands internal entities)."""
    if len(body) > 16 * 1024 or b"<!ENTITY" in body.upper() or b"<!DOCTYPE" in body.upper():
        return None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for element in root.iter():
        if element.tag.rpartition("}")[2] == "EMailAddress" and element.text:
            address = element.text.strip()
            if 3 <= len(address) <= 320 and address.count("@") == 1:
                return address
    return None


def autodiscover_response(endpoints: MailEndpoints, address: str) -> bytes:
    """The Outlook response for an address of ours: IMAP and SMTP over TLS."""
    ET.register_namespace("", AUTODISCOVER_NS)
    root = ET.Element(f"{{{AUTODISCOVER_NS}}}Autodiscover")
    response = ET.SubElement(root, f"{{{OUTLOOK_NS}}}Response")
    account = ET.SubElement(response, f"{{{OUTLOOK_NS}}}Account")
    _sub(account, f"{{{OUTLOOK_NS}}}AccountType", "email")
    _sub(account, f"{{{OUTLOOK_NS}}}Action", "settings")
    login = address.rpartition("@")[0]
    for kind, port, encryption in (("IMAP", endpoints.imaps_port, "SSL"),
                                   ("SMTP", endpoints.submissions_port, "SSL")):
        if port <= 0:
            continue
        protocol = ET.SubElement(account, f"{{{OUTLOOK_NS}}}Protocol")
        for tag, text in (("Type", kind), ("Server", endpoints.host), ("Port", str(port)),
                          ("LoginName", login), ("DomainRequired", "off"), ("SPA", "off"),
                          ("SSL", "on"), ("Encryption", encryption), ("AuthRequired", "on")):
            _sub(protocol, f"{{{OUTLOOK_NS}}}{tag}", text)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")


def autodiscover_error(code: str = "600", message: str = "Invalid Request") -> bytes:
    """The autodiscover error answer (same for every address we do not serve)."""
    ET.register_namespace("", AUTODISCOVER_NS)
    root = ET.Element(f"{{{AUTODISCOVER_NS}}}Autodiscover")
    response = ET.SubElement(root, f"{{{AUTODISCOVER_NS}}}Response")
    error = ET.SubElement(response, f"{{{AUTODISCOVER_NS}}}Error", Id="0", Time="00:00:00")
    _sub(error, f"{{{AUTODISCOVER_NS}}}ErrorCode", code)
    _sub(error, f"{{{AUTODISCOVER_NS}}}Message", message)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")


def apple_profile(endpoints: MailEndpoints, address: str, display_name: str = "") -> bytes:
    """An unsigned ``.mobileconfig`` with one IMAP account (Apple Configuration
    Profile Reference, ``com.apple.mail.managed``); the password is asked on the device."""
    login = address.rpartition("@")[0]
    stable = uuid.uuid5(uuid.NAMESPACE_DNS, f"{address}.mail.{endpoints.domain}")
    mail = {
        "PayloadType": "com.apple.mail.managed", "PayloadVersion": 1,
        "PayloadIdentifier": f"{_reverse(endpoints.domain)}.mail.{stable}",
        "PayloadUUID": str(uuid.uuid5(stable, "mail")).upper(),
        "PayloadDisplayName": f"E-Mail {endpoints.school_name}",
        "EmailAccountDescription": endpoints.school_name,
        "EmailAccountName": display_name or login,
        "EmailAccountType": "EmailTypeIMAP", "EmailAddress": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": endpoints.host,
        "IncomingMailServerPortNumber": endpoints.imaps_port,
        "IncomingMailServerUseSSL": True, "IncomingMailServerUsername": login,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": endpoints.host,
        "OutgoingMailServerPortNumber": endpoints.submissions_port,
        "OutgoingMailServerUseSSL": True, "OutgoingMailServerUsername": login,
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadContent": [mail], "PayloadType": "Configuration", "PayloadVersion": 1,
        "PayloadIdentifier": f"{_reverse(endpoints.domain)}.profile.{stable}",
        "PayloadUUID": str(stable).upper(),
        "PayloadDisplayName": f"{endpoints.school_name} E-Mail",
        "PayloadDescription": f"E-Mail-Konto {address} / mail account {address}",
        "PayloadOrganization": endpoints.school_name, "PayloadRemovalDisallowed": False,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


def _reverse(domain: str) -> str:
    return ".".join(reversed(domain.split(".")))
