"""A failed test bed step reports what the daemons logged, since the VM is gone afterwards."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.package.testbed import GuestCommandError, Testbed

JOURNAL = "journalctl -u vcalld -u vcalld-peer -n 80 --no-pager -o short-monotonic"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    vm = getattr(item, "funcargs", {}).get("vm")
    if report.when == "call" and report.failed and isinstance(vm, Testbed):
        try:
            report.sections.append(("daemon journals", vm.run(JOURNAL)))
        except GuestCommandError as error:
            report.sections.append(("daemon journals", f"unreadable: {error}"))
    return report
