"""The command line shows no secret that a server echoes back."""

from __future__ import annotations

import pytest

from teletracker_async._cli import main
from teletracker_async.testing import FakeTeletracker
from tests.conftest import PASSWORD, USERNAME


@pytest.mark.parametrize("status", [200, 403])
def test_verify_prints_no_echoed_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    """A refusal to verify that quotes the password (success: false on a 200, or a
    403) is printed redacted, and the command fails."""
    fake = FakeTeletracker(users={USERNAME: PASSWORD})
    fake.fail_next(
        "login",
        status,
        body={"success": False, "message": f"rejected {PASSWORD} for {USERNAME}"},
    )
    with fake.serving() as url:
        monkeypatch.setenv("TELETRACKER_USERNAME", USERNAME)
        monkeypatch.setenv("TELETRACKER_PASSWORD", PASSWORD)
        monkeypatch.setenv("TELETRACKER_BASE_URL", url)
        code = main(["verify"])
    out, err = capsys.readouterr()
    assert code != 0
    assert "rejected <redacted>" in out + err
    assert PASSWORD not in out + err
