"""What the browser tests share about the admin pages: the change list, filters, messages, signing in."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

from playwright.sync_api import Locator, Page, expect


def result_rows(page: Page) -> Locator:
    return page.locator("#result_list tbody tr")


def row_of(page: Page, pk: int) -> Locator:
    """The change-list row of object `pk` (by its own link, not a link to another object in the row)."""
    return result_rows(page).filter(has=page.locator(f'th a[href*="/{pk}/change/"]'))


def paginator_count(page: Page, count: int, noun: str) -> None:
    expect(page.locator("p.paginator")).to_contain_text(re.compile(rf"\b{count} {noun}s?\b"))


def search(page: Page, text: str) -> None:
    page.locator("#searchbar").fill(text)
    page.locator("#changelist-search [type=submit]").click()
    expect(page).to_have_url(re.compile(rf"[?&]q={re.escape(quote_plus(text))}(&|$)"))


def sidebar_filter(page: Page, title: str, choice: str) -> None:
    section = page.locator(f'#changelist-filter details[data-filter-title="{title}"]')
    section.get_by_role("link", name=choice, exact=True).click()
    expect(section.locator("li.selected")).to_have_text(choice)


def bulk_action(page: Page, label: str, pks: list[int]) -> None:
    """Tick the rows of `pks` on the change list and run the action called `label`."""
    for pk in pks:
        row_of(page, pk).locator("input.action-select").check()
    expect(page.locator("#changelist-form .action-counter")).to_contain_text(f"{len(pks)} of")
    page.locator('#changelist-form select[name="action"]').select_option(label=label)
    page.locator('#changelist-form button[name="index"]').click()


def message(page: Page, level: str = "success") -> Locator:
    """The admin's messages of one level (success, warning, error) shown on this page."""
    return page.locator(f"ul.messagelist li.{level}")


def sign_in_as(page: Page, login: Callable[..., None], username: str, *args: Any) -> None:
    """Leave whoever is signed in (a fresh session, as on another desk) and sign in as `username`."""
    page.context.clear_cookies()
    login(page, username, *args)
