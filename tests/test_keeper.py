"""TokenKeeper in process, on a real JSON token store and a fake Salesforce that rotates refresh
tokens as Salesforce does: single-flight refresh, the new refresh token saved every time, never a
loop, dead grants dropped, a store that refuses a save ridden out. (End to end over the stand-ins:
tests/functions/test_refresh.py.)"""
from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sfdcflex.clients.salesforce import InvalidGrant, SessionExpired
from sfdcflex.errors import NotLinked
from sfdcflex.keeper import NOT_LINKED, TokenKeeper
from sfdcflex.runtime.errors import BadGateway
from sfdcflex.runtime.timing import ServerTiming
from sfdcflex.store import JsonFileTokenStore

ALICE = "alice@example.com"


class FakeSalesforce:
    """Salesforce's token rules: every refresh spends the refresh token it was given and issues a
    new pair; a spent or revoked refresh token is refused with invalid_grant."""

    def __init__(self) -> None:
        self.live: dict[str, str] = {}        # refresh token -> its access token
        self.valid: set[str] = set()          # access tokens Salesforce accepts now
        self.presented: list[str] = []        # refresh tokens sent to refresh(), in order
        self.revoked: list[str] = []
        self.before_refresh = lambda: None    # a test's hook: runs as a refresh arrives
        self._serial = itertools.count(1)

    def grant(self) -> tuple[str, str]:
        serial = next(self._serial)
        access, refresh = f"access-{serial}", f"refresh-{serial}"
        self.live[refresh] = access
        self.valid.add(access)
        return access, refresh

    def expire(self) -> None:
        self.valid.clear()

    def userinfo(self, access_token: str) -> dict:
        if access_token not in self.valid:
            raise SessionExpired("Salesforce session expired")
        return {"access_token_used": access_token}

    def refresh(self, refresh_token: str) -> dict:
        self.presented.append(refresh_token)
        self.before_refresh()
        if self.live.pop(refresh_token, None) is None:
            raise InvalidGrant("Salesforce refused the refresh token; connect Salesforce again")
        access, refresh = self.grant()
        return {"access_token": access, "refresh_token": refresh}

    def revoke(self, refresh_token: str) -> None:
        self.revoked.append(refresh_token)
        self.live.pop(refresh_token, None)


@pytest.fixture
def sf() -> FakeSalesforce:
    return FakeSalesforce()


@pytest.fixture
def store(tmp_path) -> JsonFileTokenStore:
    return JsonFileTokenStore(tmp_path / "tokens.json")


@pytest.fixture
def keeper(store, sf) -> TokenKeeper:
    keeper = TokenKeeper(store, sf)
    keeper.link(ALICE, *sf.grant())
    return keeper


def _userinfo(keeper: TokenKeeper, sf: FakeSalesforce, timing: ServerTiming | None = None) -> dict:
    return keeper.call(ALICE, sf.userinfo, timing or ServerTiming(), "sfdc-userinfo", "Salesforce userinfo")


def test_a_storm_after_expiry_refreshes_once_for_every_waiting_request(keeper, sf, store):
    """Eight requests meet the expired session together: one refreshes, the others wait for it,
    use its tokens and say in Server-Timing that a concurrent request refreshed them."""
    _userinfo(keeper, sf)
    sf.expire()
    expired_seen, everyone_expired = itertools.count(1), threading.Event()
    userinfo = sf.userinfo

    def counting_userinfo(access_token: str) -> dict:
        try:
            return userinfo(access_token)
        except SessionExpired:
            if next(expired_seen) == 8:
                everyone_expired.set()
            raise

    sf.userinfo = counting_userinfo
    # The refresh waits (boundedly) until all eight have found the session expired.
    sf.before_refresh = lambda: everyone_expired.wait(5)
    start = threading.Barrier(8)

    def request(_: int) -> tuple[dict, str]:
        timing = ServerTiming()
        start.wait(5)
        return _userinfo(keeper, sf, timing), timing.header()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(request, range(8)))
    assert everyone_expired.is_set()
    assert len(sf.presented) == 1
    assert {answer["access_token_used"] for answer, _ in answers} == {store.get(ALICE).access_token}
    # The seven that waited say so in Server-Timing, which the browser's data-flow panel shows.
    waited = [header for _, header in answers
              if 'sfdc-refresh;desc="refreshed by a concurrent request"' in header]
    assert len(waited) == 7


def test_the_rotated_refresh_token_is_saved_every_time(keeper, sf, store):
    saved = set()
    for _ in range(3):
        sf.expire()
        timing = ServerTiming()
        _userinfo(keeper, sf, timing)
        assert "sfdc-refresh" in timing.header()
        saved.add(store.get(ALICE).refresh_token)
    assert len(saved) == 3                                      # a new one saved each time
    assert store.get(ALICE).refresh_token not in sf.presented   # the newest is unspent
    assert len(set(sf.presented)) == len(sf.presented) == 3    # no refresh token presented twice


def test_a_dead_grant_drops_the_link_and_asks_to_connect_again(keeper, sf, store):
    sf.revoke(store.get(ALICE).refresh_token)
    sf.expire()
    with pytest.raises(NotLinked) as raised:
        _userinfo(keeper, sf)
    assert raised.value.code == "not_linked" and "again" in raised.value.message
    assert store.get(ALICE) is None
    with pytest.raises(NotLinked) as raised:   # and the next request is not linked either
        _userinfo(keeper, sf)
    assert raised.value.message == NOT_LINKED


def test_a_session_refused_right_after_its_refresh_is_a_502_never_a_loop(keeper, sf):
    sf.userinfo = lambda access_token: (_ for _ in ()).throw(SessionExpired("expired"))
    with pytest.raises(BadGateway) as raised:
        _userinfo(keeper, sf)
    assert raised.value.code == "salesforce_session_refused"
    assert len(sf.presented) == 1


def test_a_refresh_by_another_instance_is_used_without_a_second(store, sf):
    one, two = TokenKeeper(store, sf), TokenKeeper(store, sf)
    one.link(ALICE, *sf.grant())
    _userinfo(two, sf)                      # two holds the first pair
    sf.expire()
    _userinfo(one, sf)                      # one refreshes and saves
    assert len(sf.presented) == 1
    assert _userinfo(two, sf)["access_token_used"] == store.get(ALICE).access_token
    assert len(sf.presented) == 1           # two read the store instead of refreshing


def test_a_link_deleted_while_its_refresh_is_under_way_ends_not_linked(keeper, sf, store, tmp_path):
    """The agent unlinks on another instance while this one's refresh is at Salesforce: the
    refreshed pair is not saved over the deletion, and the request ends not linked."""
    _userinfo(keeper, sf)
    sf.expire()
    sf.before_refresh = lambda: JsonFileTokenStore(tmp_path / "tokens.json").delete(ALICE)
    with pytest.raises(NotLinked) as raised:
        _userinfo(keeper, sf)
    assert raised.value.message == NOT_LINKED
    assert store.get(ALICE) is None


def test_a_dead_chain_never_deletes_a_link_made_meanwhile(sf, tmp_path):
    """While one instance's refresh is at Salesforce, the agent unlinks (the chain dies) and links
    again on another: the refused refresh adopts the new link instead of deleting it."""
    one = TokenKeeper(JsonFileTokenStore(tmp_path / "tokens.json"), sf)
    two = TokenKeeper(JsonFileTokenStore(tmp_path / "tokens.json"), sf)
    one.link(ALICE, *sf.grant())
    _userinfo(one, sf)                        # one holds the first pair
    sf.expire()

    def unlink_and_link_again_elsewhere() -> None:
        sf.before_refresh = lambda: None
        assert two.unlink(ALICE) is True
        two.link(ALICE, *sf.grant())

    sf.before_refresh = unlink_and_link_again_elsewhere
    assert _userinfo(one, sf)["access_token_used"] == two.store.get(ALICE).access_token
    assert one.store.get(ALICE) is not None


class RefusingStore(JsonFileTokenStore):
    """A JSON store whose next `refusals` puts fail as a full disk would."""

    refusals = 0

    def put(self, *args, **kwargs):
        if self.refusals:
            self.refusals -= 1
            raise OSError(28, "No space left on device")
        return super().put(*args, **kwargs)


def test_a_pair_the_store_refuses_is_used_from_memory_and_saved_next_time(tmp_path, sf, caplog):
    store = RefusingStore(tmp_path / "tokens.json")
    keeper = TokenKeeper(store, sf)
    keeper.link(ALICE, *sf.grant())
    sf.expire()
    store.refusals = 1
    with caplog.at_level("WARNING", logger="sfdcflex"):
        fresh = _userinfo(keeper, sf)["access_token_used"]
    assert "could not save refreshed Salesforce tokens" in caplog.text
    assert store.get(ALICE).access_token != fresh           # only in memory for now
    sf.expire()                                              # a second expiry meanwhile:
    _userinfo(keeper, sf)                                    # refreshed from the unsaved pair
    assert len(set(sf.presented)) == len(sf.presented) == 2
    assert store.get(ALICE).refresh_token not in sf.presented   # and that one is saved now


def _refreshed_in_memory_only(tmp_path, sf) -> tuple[RefusingStore, TokenKeeper]:
    """Alice linked, her access token expired, and the refreshed pair held in memory only: the
    store refused to save it once."""
    store = RefusingStore(tmp_path / "tokens.json")
    keeper = TokenKeeper(store, sf)
    keeper.link(ALICE, *sf.grant())
    sf.expire()
    store.refusals = 1
    _userinfo(keeper, sf)
    return store, keeper


def test_a_pair_the_store_refused_yields_to_a_link_made_meanwhile_elsewhere(tmp_path, sf):
    """A refreshed pair held in memory because the store refused it is not saved over a link the
    agent made meanwhile on another instance: the next request adopts that newer link."""
    store, keeper = _refreshed_in_memory_only(tmp_path, sf)
    TokenKeeper(JsonFileTokenStore(tmp_path / "tokens.json"), sf).link(ALICE, *sf.grant())
    newer = store.get(ALICE)
    assert _userinfo(keeper, sf)["access_token_used"] == newer.access_token
    assert store.get(ALICE) == newer


def test_unlink_revokes_the_refreshed_grant_the_store_could_not_take(tmp_path, sf):
    """Unlinking while the refreshed pair lives only in memory (the store refused it) revokes that
    pair's refresh token, the live one, not the spent one still in the store."""
    store, keeper = _refreshed_in_memory_only(tmp_path, sf)
    [live] = sf.live
    assert keeper.unlink(ALICE) is True
    assert live in sf.revoked and not sf.live
    assert store.get(ALICE) is None


def test_unlink_revokes_a_grant_made_meanwhile_on_another_instance(tmp_path, sf):
    """The agent linked again on another instance while this one still holds the old pair:
    unlinking here revokes the newer, stored grant too, so none is left alive at Salesforce."""
    keeper = TokenKeeper(JsonFileTokenStore(tmp_path / "tokens.json"), sf)
    keeper.link(ALICE, *sf.grant())
    _userinfo(keeper, sf)                                    # the pair is held in memory here
    other = TokenKeeper(JsonFileTokenStore(tmp_path / "tokens.json"), sf)
    other.link(ALICE, *sf.grant())                           # the other instance revokes the old one
    newer = other.store.get(ALICE).refresh_token
    assert keeper.unlink(ALICE) is True
    assert newer in sf.revoked and not sf.live
    assert keeper.store.get(ALICE) is None


def test_linking_again_replaces_the_pair_and_revokes_the_old_grant(keeper, sf, store):
    old = store.get(ALICE).refresh_token
    keeper.link(ALICE, *sf.grant())
    assert sf.revoked == [old] and store.get(ALICE).refresh_token != old


def test_unlink_revokes_the_grant_and_forgets_the_link(keeper, sf, store):
    held = store.get(ALICE).refresh_token
    assert keeper.unlink(ALICE) is True
    assert sf.revoked == [held] and store.get(ALICE) is None
    assert keeper.unlink(ALICE) is False
    with pytest.raises(NotLinked):
        _userinfo(keeper, sf)
