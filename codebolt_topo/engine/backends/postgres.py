"""The PostgreSQL state backend, with the semantics of Terraform's ``pg`` backend.

Why PostgreSQL: a team applying one topology from several machines needs one state that every
member reads and writes, a lock that excludes concurrent writers wherever they run, and history
to look back at. Terraform's ``pg`` backend gives exactly that with nothing but a database; this
backend follows it:

* **Lock**: a session-level advisory lock (``pg_try_advisory_lock(KEY_SPACE, id)``, ``id`` the
  topology's row in ``states``), held on a connection opened for the run. It dies with its
  holder's connection: a run killed with SIGKILL, or whose machine vanished, releases it as
  soon as the server notices the closed socket. The holder also records who it is in
  ``locks`` (operation, pid, host, user, lock id); a refused run reads that row, trusting it
  only when the session it names really holds the advisory lock (``pg_locks``).
* **Force-unlock** terminates the holder's session (``pg_terminate_backend``): its lock is gone
  and so is the connection it would write through, so it can no longer write.
* **Lineage and serial**: every write, in one transaction, checks that the stored state still
  has the lineage and serial this run loaded (``SELECT ... FOR UPDATE``), stores the new
  version in ``state_versions`` and points ``states`` at it. A transaction commits whole or not
  at all: a database that goes away mid-apply leaves the last committed version, never a torn
  one, and the error says so (:class:`~codebolt_topo.engine.statefile.BackendUnavailableError`).
* **Every version is kept** (``state_versions``): ``codebolt state versions`` lists them,
  ``state pull --serial N`` reads one.
* **Lease** of a standing ``watch``: a row of ``leases`` whose expiry is judged by the server's
  clock (``now()``), so two machines' clocks never disagree about it; a fenced write checks it
  in the same transaction as the write.

The connection string comes from the environment variable the ``backend:`` block names
(``CODEBOLT_PG_DSN`` by default); messages show it without its password. Tables are created in
the block's schema (``codebolt``) on first use.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from codebolt_topo.engine.lease import Lease, LeaseInfo, LeaseLostError, LeaseStore
from codebolt_topo.engine.statefile import (
    BackendUnavailableError,
    StateBackend,
    StateVersion,
    check_push,
    describe_holder,
    ensure_state_dir,
    holder_info,
    parse_state,
    render_state,
    who_am_i,
)
from codebolt_topo.errors import ConfigError, LockError, StateError
from codebolt_topo.model.backend import BackendSpec
from codebolt_topo.model.state import State

if TYPE_CHECKING:
    from codebolt_topo.engine.statekey import Keyring

__all__ = ["KEY_SPACE", "PostgresBackend", "PostgresLeaseStore", "safe_dsn"]

#: First key of every advisory lock this backend takes ("CBTP"); the second is the topology's
#: row id (0: the schema's creation).
KEY_SPACE = 0x43425450

_TABLES = (
    """CREATE TABLE IF NOT EXISTS {s}.states (
        topology text PRIMARY KEY,
        id bigserial NOT NULL UNIQUE,
        lineage text,
        serial bigint,
        document text,
        updated_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS {s}.state_versions (
        topology text NOT NULL,
        lineage text NOT NULL,
        serial bigint NOT NULL,
        document text NOT NULL,
        written_at timestamptz NOT NULL DEFAULT now(),
        written_by text NOT NULL,
        PRIMARY KEY (topology, lineage, serial))""",
    """CREATE TABLE IF NOT EXISTS {s}.locks (
        topology text PRIMARY KEY,
        lock_id text NOT NULL,
        info jsonb NOT NULL,
        backend_pid integer NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.leases (
        topology text PRIMARY KEY,
        holder text NOT NULL,
        term bigint NOT NULL,
        expires_at timestamptz NOT NULL)""",
)

_HOLDERS = """SELECT k.pid, a.application_name, l.info
    FROM pg_locks k
    LEFT JOIN pg_stat_activity a ON a.pid = k.pid
    LEFT JOIN {s}.locks l ON l.topology = %s AND l.backend_pid = k.pid
    WHERE k.locktype = 'advisory' AND k.granted
      AND k.classid::bigint = %s AND k.objid::bigint = %s AND k.objsubid = 2"""


def _scalar(cursor: psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    return None if row is None else row[0]


def safe_dsn(dsn: str) -> str:
    """The connection string without its password, for messages."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparsable connection string)"
    params.pop("password", None)
    return " ".join(f"{key}={value}" for key, value in sorted(params.items()))


class PostgresBackend(StateBackend):
    """One topology's state in a PostgreSQL database (see the module docstring)."""

    def __init__(
        self, directory: Path, name: str, spec: BackendSpec, keyring: Keyring | None = None
    ) -> None:
        super().__init__(directory, name, keyring)
        dsn = os.environ.get(spec.dsn_env)
        if not dsn:
            raise ConfigError(
                f"the postgres state backend reads its connection string from ${spec.dsn_env}, "
                "which is not set: export it (it is never written in topology.yaml)"
            )
        self.spec = spec
        self._dsn = dsn
        self._s = sql.Identifier(spec.schema_name)
        self._reader: psycopg.Connection[Any] | None = None
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._ready = False
        self._id: int | None = None

    # -- connections ---------------------------------------------------------------------------
    @property
    def location(self) -> str:
        return (
            f"PostgreSQL ({safe_dsn(self._dsn)}) schema {self.spec.schema_name}, "
            f"topology {self.name}"
        )

    def _down(self, error: Exception, doing: str) -> BackendUnavailableError:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        self.unavailable = BackendUnavailableError(
            f"the state backend is unreachable while {doing}: {self.location}: {reason}. "
            "Nothing was written past the last committed version (no partial state); run "
            "the command again once PostgreSQL is back: apply converges from there"
        )
        return self.unavailable

    def _connect(self, application: str) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self._dsn, autocommit=True, application_name=application[:63], connect_timeout=10
            )
        except psycopg.OperationalError as error:
            raise self._down(error, "connecting") from None
        if not self._ready:
            self._create_schema(conn)
        return conn

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (KEY_SPACE,))
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(self._s))
                for ddl in _TABLES:
                    conn.execute(sql.SQL(ddl).format(s=self._s))
        except psycopg.OperationalError as error:
            raise self._down(error, "creating the tables") from None
        self._ready = True

    def _read_conn(self) -> psycopg.Connection[Any]:
        if self._reader is None or self._reader.closed:
            self._reader = self._connect("codebolt read")
        return self._reader

    def _query(self, query: str, params: tuple[Any, ...], doing: str) -> list[tuple[Any, ...]]:
        """One read through the shared connection (opened again once if it dropped)."""
        for attempt in (1, 2):
            conn = self._read_conn()
            try:
                cursor = conn.execute(sql.SQL(query).format(s=self._s), params)
                return cursor.fetchall() if cursor.description is not None else []
            except psycopg.OperationalError as error:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
                self._reader = None
                if attempt == 2:
                    raise self._down(error, doing) from None
        raise AssertionError("unreachable")

    def __del__(self) -> None:
        # Callers that read once (plan, status) drop the backend without closing it: close
        # its connection here rather than leave the driver to warn about a leaked one.
        self.close()

    def close(self) -> None:
        for conn in (getattr(self, "_reader", None), getattr(self, "_lock_conn", None)):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
        self._reader = None

    # -- reading -------------------------------------------------------------------------------
    def exists(self) -> bool:
        rows = self._query(
            "SELECT 1 FROM {s}.states WHERE topology = %s AND document IS NOT NULL",
            (self.name,),
            "reading the state",
        )
        return bool(rows)

    def load(self, *, sealed_ok: bool = False) -> State:
        rows = self._query(
            "SELECT document FROM {s}.states WHERE topology = %s", (self.name,), "reading the state"
        )
        if not rows or rows[0][0] is None:
            return State(topology=self.name)
        return parse_state(
            rows[0][0].encode(),
            self.keyring,
            where=self.location,
            name=self.name,
            sealed_ok=sealed_ok,
        )

    def fingerprint(self) -> object:
        rows = self._query(
            "SELECT lineage, serial FROM {s}.states WHERE topology = %s",
            (self.name,),
            "reading the state",
        )
        return tuple(rows[0]) if rows and rows[0][0] is not None else None

    def versions(self) -> list[StateVersion]:
        rows = self._query(
            """SELECT serial, lineage, to_char(written_at, 'YYYY-MM-DD"T"HH24:MI:SSOF'),
                      written_by,
                      (SELECT count(*) FROM jsonb_object_keys(document::jsonb -> 'nodes'))
               FROM {s}.state_versions WHERE topology = %s ORDER BY written_at, serial""",
            (self.name,),
            "listing state versions",
        )
        return [StateVersion(int(r[0]), r[1], r[2], r[3], int(r[4])) for r in rows]

    def load_version(self, serial: int, *, sealed_ok: bool = False) -> State:
        lineage = self.load(sealed_ok=True).lineage if self.exists() else None
        rows = self._query(
            "SELECT document FROM {s}.state_versions "
            "WHERE topology = %s AND lineage = %s AND serial = %s",
            (self.name, lineage, serial),
            "reading a state version",
        )
        if not rows:
            kept = ", ".join(str(v.serial) for v in self.versions() if v.lineage == lineage)
            raise StateError(
                f"no version {serial} of the state in {self.location} (kept: {kept or 'none'})"
            )
        return parse_state(
            rows[0][0].encode(),
            self.keyring,
            where=f"{self.location}, version {serial}",
            name=self.name,
            sealed_ok=sealed_ok,
        )

    # -- the lock --------------------------------------------------------------------------------
    def _row_id(self, conn: psycopg.Connection[Any]) -> int:
        if self._id is None:
            query = "INSERT INTO {s}.states (topology) VALUES (%s) ON CONFLICT DO NOTHING"
            conn.execute(sql.SQL(query).format(s=self._s), (self.name,))
            row = conn.execute(
                sql.SQL("SELECT id FROM {s}.states WHERE topology = %s").format(s=self._s),
                (self.name,),
            ).fetchone()
            assert row is not None
            self._id = int(row[0])
        return self._id

    @contextlib.contextmanager
    def locked(self, operation: str, timeout: float = 0.0) -> Iterator[None]:
        ensure_state_dir(self.directory)  # node runtime files stay on this machine
        conn = self._connect(f"codebolt {operation} {self.name}")
        try:
            try:
                key = self._row_id(conn)
                deadline = time.monotonic() + timeout
                while not _scalar(
                    conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (KEY_SPACE, key))
                ):
                    if time.monotonic() >= deadline:
                        raise LockError(
                            f"state {self.location} is locked by {self._holder(conn, key)}"
                        )
                    time.sleep(0.1)
                lock_id = uuid.uuid4().hex
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {s}.locks (topology, lock_id, info, backend_pid) "
                        "VALUES (%s, %s, %s, pg_backend_pid()) ON CONFLICT (topology) DO UPDATE "
                        "SET lock_id = EXCLUDED.lock_id, info = EXCLUDED.info, "
                        "backend_pid = EXCLUDED.backend_pid"
                    ).format(s=self._s),
                    (self.name, lock_id, Jsonb(holder_info(operation, lock_id))),
                )
            except psycopg.OperationalError as error:
                raise self._down(error, "taking the lock") from None
            self._lock_conn, self.lock_id = conn, lock_id
            try:
                yield
            finally:
                self._lock_conn = self.lock_id = None
                with contextlib.suppress(psycopg.Error):
                    conn.execute(
                        sql.SQL(
                            "DELETE FROM {s}.locks WHERE topology = %s AND lock_id = %s"
                        ).format(s=self._s),
                        (self.name, lock_id),
                    )
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.close()  # ending the session releases the advisory lock

    def _holder(self, conn: psycopg.Connection[Any], key: int, settle: float = 1.0) -> str:
        """Who holds the advisory lock: the ``locks`` row of that very session, once it has
        written it (``settle`` seconds), else what the server knows of the session."""
        deadline = time.monotonic() + settle
        while True:
            query = sql.SQL(_HOLDERS).format(s=self._s)
            rows = conn.execute(query, (self.name, KEY_SPACE, key)).fetchall()
            if not rows:
                return "another run (it has just released the lock: try again)"
            pid, application, info = rows[0]
            if info:
                return f"{describe_holder(info)}, PostgreSQL session {pid}"
            if time.monotonic() >= deadline:
                return f"another run (PostgreSQL session {pid}, {application or 'no name'})"
            time.sleep(0.05)

    def force_unlock(self, lock_id: str) -> str:
        rows = self._query(
            "SELECT info, backend_pid FROM {s}.locks WHERE topology = %s",
            (self.name,),
            "reading the lock",
        )
        key = self._row_id(self._read_conn())
        holders = self._query(_HOLDERS, (self.name, KEY_SPACE, key), "reading the lock")
        if not holders:
            raise StateError(f"state {self.location} is not locked")
        pid, _application, info = holders[0]
        if not info or info.get("id") != lock_id:
            shown = describe_holder(info) if info else f"PostgreSQL session {pid}"
            raise LockError(
                f"lock id {lock_id!r} does not match: state {self.location} is locked by {shown}"
            )
        del rows
        self._query("SELECT pg_terminate_backend(%s)", (pid,), "breaking the lock")
        self._query(
            "DELETE FROM {s}.locks WHERE topology = %s AND lock_id = %s",
            (self.name, lock_id),
            "breaking the lock",
        )
        return describe_holder(info)

    # -- writing ---------------------------------------------------------------------------------
    def _write(self, state: State, serial: int, *, expect: tuple[str, int] | None) -> None:
        """Store ``state`` as version ``serial`` in one transaction, after checking that the
        stored lineage and serial are ``expect`` (None: anything of the same lineage older
        than ``serial``, for push)."""
        conn = self._lock_conn
        if conn is None:
            raise StateError("internal: state written without holding the lock")
        if self.unavailable is not None:
            raise self.unavailable
        data = render_state(state.model_copy(update={"serial": serial}), self.keyring).decode()
        who = who_am_i()
        s = self._s
        try:
            with conn.transaction():
                key = self._row_id(conn)
                held = conn.execute(
                    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                    "pid = pg_backend_pid() AND classid::bigint = %s AND objid::bigint = %s "
                    "AND objsubid = 2",
                    (KEY_SPACE, key),
                ).fetchone()
                if held is None:
                    raise LockError(
                        f"the lock on {self.location} is no longer ours (lock id "
                        f"{self.lock_id}); refusing to write"
                    )
                if self._fence is not None:
                    self._check_fence(conn, self._fence)
                row = conn.execute(
                    sql.SQL(
                        "SELECT lineage, serial FROM {s}.states WHERE topology = %s FOR UPDATE"
                    ).format(s=s),
                    (self.name,),
                ).fetchone()
                stored = (row[0], int(row[1])) if row and row[0] is not None else None
                if stored is not None and expect is not None and stored != expect:
                    raise StateError(
                        f"state {self.location} moved under us: it holds lineage {stored[0]} "
                        f"serial {stored[1]}, this run loaded {expect[0]} serial {expect[1]}"
                    )
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {s}.state_versions "
                        "(topology, lineage, serial, document, written_by) "
                        "VALUES (%s, %s, %s, %s, %s)"
                    ).format(s=s),
                    (self.name, state.lineage, serial, data, who),
                )
                conn.execute(
                    sql.SQL(
                        "UPDATE {s}.states SET lineage = %s, serial = %s, document = %s, "
                        "updated_at = now() WHERE topology = %s"
                    ).format(s=s),
                    (state.lineage, serial, data, self.name),
                )
        except psycopg.errors.UniqueViolation:
            raise StateError(
                f"state {self.location} already has version {serial} of lineage "
                f"{state.lineage}: another writer got there first"
            ) from None
        except psycopg.OperationalError as error:
            raise self._down(error, "writing the state") from None

    def save(self, state: State) -> None:
        self._write(state, state.serial + 1, expect=(state.lineage, state.serial))
        state.serial += 1

    def push(self, incoming: State) -> None:
        current = self.load(sealed_ok=True)
        exists = self.exists()
        check_push(self.name, current, exists, incoming)
        self._write(incoming, incoming.serial, expect=None)

    def reseal(self, keyring: Keyring) -> int:
        """Key rotation: every kept version and the current state sealed again with
        ``keyring``'s key, in one transaction (all or nothing)."""
        conn = self._lock_conn
        if conn is None:
            raise StateError("internal: state resealed without holding the lock")
        s = self._s
        count = 0
        try:
            with conn.transaction():
                rows = conn.execute(
                    sql.SQL(
                        "SELECT lineage, serial, document FROM {s}.state_versions "
                        "WHERE topology = %s FOR UPDATE"
                    ).format(s=s),
                    (self.name,),
                ).fetchall()
                for lineage, serial, document in rows:
                    resealed = self._reseal_text(document, keyring)
                    conn.execute(
                        sql.SQL(
                            "UPDATE {s}.state_versions SET document = %s "
                            "WHERE topology = %s AND lineage = %s AND serial = %s"
                        ).format(s=s),
                        (resealed, self.name, lineage, serial),
                    )
                    count += 1
                conn.execute(
                    sql.SQL(
                        "UPDATE {s}.states SET document = v.document FROM {s}.state_versions v "
                        "WHERE states.topology = %s AND v.topology = states.topology "
                        "AND v.lineage = states.lineage AND v.serial = states.serial"
                    ).format(s=s),
                    (self.name,),
                )
        except psycopg.OperationalError as error:
            raise self._down(error, "rewriting the state with the new key") from None
        self.keyring = keyring
        return count

    def _reseal_text(self, document: str, keyring: Keyring) -> str:
        opened = self.keyring.open_document(json.loads(document), sealed_ok=True)
        return json.dumps(keyring.seal_document(opened), indent=2) + "\n"

    # -- the watch lease -----------------------------------------------------------------------
    def leases(self) -> LeaseStore:
        return PostgresLeaseStore(self)

    def _check_fence(self, conn: psycopg.Connection[Any], lease: Lease) -> None:
        row = conn.execute(
            sql.SQL(
                "SELECT holder, term, expires_at > now() FROM {s}.leases WHERE topology = %s "
                "FOR SHARE"
            ).format(s=self._s),
            (self.name,),
        ).fetchone()
        if row is None or row[0] != lease.holder or int(row[1]) != lease.term or not row[2]:
            raise LeaseLostError(
                f"watch lease term {lease.term} is over"
                + (f" (now term {row[1]} of {row[0]})" if row else "")
                + ": not writing the state"
            )


class PostgresLeaseStore(LeaseStore):
    """The watch lease as a row of ``leases``, timed by the server's clock."""

    def __init__(self, backend: PostgresBackend) -> None:
        self.backend = backend

    def _one(self, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        rows = self.backend._query(query, params, "holding the watch lease")
        return rows[0] if rows else None

    def acquire(self, holder: str, ttl: float) -> Lease | None:
        row = self._one(
            """INSERT INTO {s}.leases (topology, holder, term, expires_at)
               VALUES (%s, %s, 1, now() + make_interval(secs => %s))
               ON CONFLICT (topology) DO UPDATE SET
                 term = CASE WHEN leases.holder = EXCLUDED.holder AND leases.expires_at > now()
                             THEN leases.term ELSE leases.term + 1 END,
                 holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
               WHERE leases.expires_at <= now() OR leases.holder = EXCLUDED.holder
               RETURNING term""",
            (self.backend.name, holder, ttl),
        )
        return None if row is None else Lease(holder, int(row[0]), ttl)

    def renew(self, lease: Lease) -> bool:
        row = self._one(
            """UPDATE {s}.leases SET expires_at = now() + make_interval(secs => %s)
               WHERE topology = %s AND holder = %s AND term = %s AND expires_at > now()
               RETURNING term""",
            (lease.ttl, self.backend.name, lease.holder, lease.term),
        )
        return row is not None

    def release(self, lease: Lease) -> None:
        self._one(
            """UPDATE {s}.leases SET expires_at = now() - interval '1 second'
               WHERE topology = %s AND holder = %s AND term = %s RETURNING term""",
            (self.backend.name, lease.holder, lease.term),
        )

    def current(self) -> LeaseInfo | None:
        row = self._one(
            "SELECT holder, term, extract(epoch FROM expires_at - now()) FROM {s}.leases "
            "WHERE topology = %s",
            (self.backend.name,),
        )
        return None if row is None else LeaseInfo(row[0], int(row[1]), float(row[2]))
