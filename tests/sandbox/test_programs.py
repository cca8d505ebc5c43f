"""The `programs` mode: a program runs confined like a candidate and gives back what it printed;
a failing, hanging or chatty program gets its status, and the candidate-judging path in the same
container is unchanged."""

import pytest

from sandbox import Output, Program, Request, RequestError
from sandbox.runner.program import parse_program_line


@pytest.mark.docker
def test_programs_give_back_what_they_printed(sandbox):
    outputs = sandbox.run_programs([
        Program("ok", "print(6 * 7)\n"),
        Program("script", "if __name__ == '__main__':\n    print('as a script')\n"),
        Program("raises", "print('so far')\nraise ValueError('boom')\n"),
        Program("syntax", "def f(:\n"),
        Program("hangs", "while True:\n    pass\n", timeout_s=1),
        Program("chatty", "print('x' * 100)\n", max_output=50),
        Program("exits", "import sys\nprint('done')\nsys.exit(0)\n"),
    ])
    got = {o.id: o for o in outputs}
    assert [o.id for o in outputs] == ["ok", "script", "raises", "syntax", "hangs", "chatty",
                                       "exits"]
    assert got["ok"] == Output("ok", "ok", "42\n", "", got["ok"].duration_s)
    assert got["script"].stdout == "as a script\n"
    assert got["raises"].status == "error" and got["raises"].stdout == "so far\n"
    assert got["raises"].error.startswith("ValueError: boom")
    assert got["syntax"].status == "syntax_error"
    assert got["hangs"].status == "timeout"
    assert got["chatty"].status == "resource_exceeded" and got["chatty"].stdout == ""
    assert got["exits"].status == "ok" and got["exits"].stdout == "done\n"


@pytest.mark.docker
def test_a_program_is_confined_like_a_candidate(sandbox):
    probe = ("import os, socket\n"
             "print(os.getuid() >= 20000)\n"
             "try:\n"
             "    socket.create_connection(('1.1.1.1', 53), timeout=1)\n"
             "    print('network')\n"
             "except OSError:\n"
             "    print('no network')\n"
             "open('/tmp/left', 'w').write('secret')\n")
    first, second = sandbox.run_programs([
        Program("probe", probe),
        Program("later", "import os\nprint(os.path.exists('/tmp/left'))\n")])
    assert first.status == "ok" and first.stdout == "True\nno network\n"
    assert second.stdout == "False\n"  # its own /tmp
    # and the same container still judges candidates
    (verdict,) = sandbox.run([Request("r", "def add(a, b):\n    return a + b\n",
                                      "def check(candidate):\n    assert candidate(1, 2) == 3\n",
                                      "add")])
    assert verdict.status == "passed"


def test_bad_programs_are_refused_before_anything_runs():
    with pytest.raises(RequestError, match="timeout_s"):
        Program("p", "print(1)", timeout_s=0)
    with pytest.raises(RequestError, match="max_output"):
        Program("p", "print(1)", max_output=0)
    assert "field 'code'" in parse_program_line('{"id": "p", "code": 3}')["_invalid"]
