"""kubeguard.redact: the one place that masks credentials, for every lane."""

from __future__ import annotations

from pathlib import Path

from kubeguard.net.detect.mask import snippet
from kubeguard.redact import mask, mask_key_id, redact, shannon_entropy
from kubeguard.rules.output import OutputTemplate

SRC = Path(__file__).resolve().parent.parent / "src" / "kubeguard"
SECRETS = ["hunter22", "s3cr3tT0k", "AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A", "Zm9vOmJhcg", "wJalrXUtnF"]


def test_redact_masks_every_credential_shape() -> None:
    text = ("GET /x?password=hunter22&token=s3cr3tT0k key AKIAIOSFODNN7EXAMPLE ASIAY34FZKBOKMUTVV7A "
            "Authorization: Basic Zm9vOmJhcg postgres://app:wJalrXUtnF@db/x --api-key=abcd1234")
    out = redact(text)
    for secret in [*SECRETS, "abcd1234"]:
        assert secret not in out, (secret, out)
    assert "AKIA****" in out and "ASIA****" in out and "--api-key=****" in out and "://app:****@db" in out
    assert redact("nothing secret here: GET /index.html") == "nothing secret here: GET /index.html"


def test_whole_values_and_key_ids() -> None:
    assert mask("AKIAIOSFODNN7EXAMPLE", 4) == "AKIA********(20 chars)"
    assert mask("hunter22") == "********(8 chars)"
    assert mask_key_id("AKIAIOSFODNN7EXAMPLE") == "AKIA****LE"
    assert shannon_entropy("aaaa") == 0.0 and shannon_entropy("abcd") == 2.0


def test_rules_and_dpi_evidence_use_it() -> None:
    rendered, fields = OutputTemplate("cmd=%proc.cmdline").render({"proc.cmdline": "aws --token=s3cr3tT0k"})
    assert "s3cr3tT0k" not in rendered and "s3cr3tT0k" not in str(fields)
    assert "hunter22" not in snippet("POST /login password=hunter22")


def test_one_aws_key_pattern_in_the_source() -> None:
    """Four copies with four different AWS-key patterns existed; only kubeguard/redact.py may hold one."""
    holders = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "(?:AKIA|" in p.read_text()
                     or "(AKIA|" in p.read_text())
    assert holders == ["redact.py"]


def test_elide_blobs_hides_an_encoded_credentials_file_on_a_command_line() -> None:
    import base64

    from kubeguard.redact import elide_blobs

    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    blob = base64.b64encode(f"[default]\naws_secret_access_key = {secret}\n".encode()).decode()
    shown = elide_blobs(f"echo {blob} | base64 -d > ~/.aws/credentials; token=abc123")
    assert blob not in shown and f"<{len(blob)} chars>" in shown
    assert "abc123" not in shown
    assert elide_blobs("id -u; hostname") == "id -u; hostname"
