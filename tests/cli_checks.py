"""Shared CLI assertions: bad input ends in exactly one `PROG: error:` line and the documented code."""


def assert_one_error_line(result, prog: str, code: int, pattern: str) -> None:
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error:"), result.stderr
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in result.output
