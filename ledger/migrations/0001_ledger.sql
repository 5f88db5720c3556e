-- The double-entry ledger: accounts with running totals, immutable two-phase transfers, entries with
-- running balances, and one PL/pgSQL function per operation, so each operation is one round trip.
-- Why this shape, and what it costs: docs/adr/0003-ledger-two-phase-transfers.md.
--
-- Money is integer euro cents (bigint). The functions run under READ COMMITTED with row locks and
-- take account locks in one global order: the exchange account, then the budget, then the programme
-- or payouts account. The most contended rows come last, so their locks are held for the shortest
-- time, and no two ledger operations can wait for each other in a cycle.
--
-- Refusals raise SQLSTATE class CX with a JSON DETAIL whose keys are the constructor arguments of the
-- matching ledger.errors class. A raised error rolls the whole statement back: a refusal writes nothing.
--
--   CX001 invalid_request         CX004 budget_exhausted        CX007 amount_exceeds_hold
--   CX002 invalid_amount          CX005 hold_not_found          CX008 payout_exceeds_posted
--   CX003 unknown_account         CX006 hold_already_resolved   CX009 idempotency_conflict
--
-- Integrity that the database enforces on every write: non-negative totals and positive bounded
-- amounts (domains), the budget/exchange limit (CHECK), immutable transfers and entries (triggers),
-- one booking per idempotency key and one resolution per hold (unique indexes). Properties that hold
-- by construction of the functions (account codes, entry chains, references) are verified by
-- ledger/checks.py instead of per-row constraints and foreign keys: table CHECKs are re-parsed and
-- foreign keys re-queried on every statement, which roughly halved hold throughput (see the ADR).

-- Types -------------------------------------------------------------------------------------------------

-- Domain checks are compiled once per session (type cache), unlike table CHECKs (once per statement).
CREATE DOMAIN ledger_total_cents AS bigint CHECK (VALUE >= 0);
-- Largest amount one transfer may carry: 10 billion euros. A limit on everything (TIGER_STYLE); it
-- also keeps every running total far from bigint overflow.
CREATE DOMAIN ledger_amount_cents AS bigint CHECK (VALUE > 0 AND VALUE <= 1000000000000);

CREATE TYPE ledger_account_kind AS ENUM ('programme', 'budget', 'exchange', 'payouts');
CREATE TYPE ledger_transfer_kind AS ENUM ('allocate', 'hold', 'post', 'void', 'pay_out');

-- Accounts ----------------------------------------------------------------------------------------------

CREATE TABLE ledger_accounts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- programme | payouts | budget:<partnership_id> | exchange:<exchange_id>
    code            text NOT NULL UNIQUE,
    kind            ledger_account_kind NOT NULL,
    partnership_id  text,  -- budgets, and the budget an exchange is funded from
    exchange_id     text,
    -- TigerBeetle's debits_must_not_exceed_credits: the account cannot spend more than it was given,
    -- counting pending holds as spent. Set on budgets and exchanges.
    debits_must_not_exceed_credits boolean NOT NULL,
    debits_pending  ledger_total_cents NOT NULL DEFAULT 0,
    debits_posted   ledger_total_cents NOT NULL DEFAULT 0,
    credits_pending ledger_total_cents NOT NULL DEFAULT 0,
    credits_posted  ledger_total_cents NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The backstop of the conditional UPDATEs in the functions below: even a hand-written UPDATE
    -- cannot overspend a flagged account.
    CONSTRAINT ledger_accounts_debits_within_credits
        CHECK (NOT debits_must_not_exceed_credits OR debits_pending + debits_posted <= credits_posted)
) WITH (fillfactor = 80);  -- room on each page for HOT updates of the running totals

INSERT INTO ledger_accounts (code, kind, debits_must_not_exceed_credits)
VALUES ('programme', 'programme', false), ('payouts', 'payouts', false);

-- Transfers ---------------------------------------------------------------------------------------------

CREATE TABLE ledger_transfers (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key   text NOT NULL,
    -- A re-hold is one request that books two transfers: the void of the old hold (the companion)
    -- and the new hold (the request's result). Both carry the request's key; only the result is unique.
    companion         boolean NOT NULL DEFAULT false,
    -- sha256 of the canonical request text (see the functions): same key + same digest is a replay.
    request_digest    bytea NOT NULL,
    kind              ledger_transfer_kind NOT NULL,
    debit_account_id  bigint NOT NULL,
    credit_account_id bigint NOT NULL,
    -- A post carries the amount posted (at most the hold's), a void the hold's amount released.
    amount_cents      ledger_amount_cents NOT NULL,
    -- The hold a post or void resolves.
    pending_id        bigint REFERENCES ledger_transfers (id),
    created_at        timestamptz NOT NULL
);

-- One booking per idempotency key, also under concurrency: the loser of a race gets unique_violation
-- and the store calls again, which then finds the winner's transfer and replays or refuses it.
CREATE UNIQUE INDEX ledger_transfers_idempotency_key_uidx ON ledger_transfers (idempotency_key)
    WHERE NOT companion;
-- A hold resolves at most once: one post or one void, never both, never twice.
CREATE UNIQUE INDEX ledger_transfers_resolves_uidx ON ledger_transfers (pending_id)
    WHERE pending_id IS NOT NULL;

-- Entries: one per account per transfer, holding the account's running totals right after it. The
-- balance of any account as of any instant is its last entry at or before that instant. Transfer ids
-- and created_at grow in lock order per account (both are drawn while the account row is locked; the
-- identity sequence is not cached per session), so (account_id, transfer_id) is booking order.
CREATE TABLE ledger_entries (
    account_id      bigint NOT NULL,
    transfer_id     bigint NOT NULL,
    debits_pending  ledger_total_cents NOT NULL,
    debits_posted   ledger_total_cents NOT NULL,
    credits_pending ledger_total_cents NOT NULL,
    credits_posted  ledger_total_cents NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (account_id, transfer_id)
);

-- Immutability ------------------------------------------------------------------------------------------

CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused; book a correcting transfer instead', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER ledger_transfers_immutable BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
-- Accounts change only their running totals: never their identity, and they are never removed.
-- (`UPDATE OF` triggers fire only when one of those columns is assigned, so the hot path pays nothing.)
CREATE TRIGGER ledger_accounts_identity_immutable
    BEFORE UPDATE OF id, code, kind, partnership_id, exchange_id, debits_must_not_exceed_credits, created_at
    ON ledger_accounts FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- What every operation returns ------------------------------------------------------------------------

CREATE TYPE ledger_transfer_result AS (
    id              bigint,
    idempotency_key text,
    kind            text,
    debit_account   text,
    credit_account  text,
    amount_cents    bigint,
    pending_id      bigint,
    created_at      timestamptz,
    replayed        boolean
);

-- Helpers -----------------------------------------------------------------------------------------------

CREATE FUNCTION ledger_fail(p_sqlstate text, p_message text, p_detail jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = p_sqlstate, MESSAGE = p_message, DETAIL = p_detail::text;
END $$;

-- Inlinable predicates, so that checking a request costs an expression, not a query.
CREATE FUNCTION ledger_valid_amount(p_amount_cents bigint) RETURNS boolean LANGUAGE sql IMMUTABLE
    AS 'SELECT p_amount_cents > 0 AND p_amount_cents <= 1000000000000';
CREATE FUNCTION ledger_valid_id(p_id text) RETURNS boolean LANGUAGE sql IMMUTABLE
    AS 'SELECT length(p_id) BETWEEN 1 AND 128 AND p_id !~ ''[[:space:][:cntrl:]]''';
CREATE FUNCTION ledger_valid_key(p_key text) RETURNS boolean LANGUAGE sql IMMUTABLE
    AS 'SELECT length(p_key) BETWEEN 1 AND 200 AND p_key !~ ''[[:cntrl:]]''';

-- Refuses a request whose key, identifiers or amount are malformed (the store checks these first;
-- this covers callers that use SQL directly).
CREATE FUNCTION ledger_refuse_request(p_key text, p_ids text[], p_id_fields text[], p_amount_cents bigint,
                                      p_check_amount boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_key IS NULL OR NOT ledger_valid_key(p_key) THEN
        PERFORM ledger_fail('CX001', 'idempotency_key must be 1-200 characters without control characters',
            jsonb_build_object('field', 'idempotency_key',
                               'reason', 'must be 1-200 characters without control characters'));
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        IF p_ids[i] IS NULL OR NOT ledger_valid_id(p_ids[i]) THEN
            PERFORM ledger_fail('CX001',
                format('%s must be 1-128 characters without whitespace or control characters', p_id_fields[i]),
                jsonb_build_object('field', p_id_fields[i],
                                   'reason', 'must be 1-128 characters without whitespace or control characters'));
        END IF;
    END LOOP;
    IF p_check_amount AND (p_amount_cents IS NULL OR NOT ledger_valid_amount(p_amount_cents)) THEN
        PERFORM ledger_fail('CX002',
            format('amount_cents must be a whole number of cents from 1 to 1000000000000, got %s',
                   coalesce(p_amount_cents::text, 'null')),
            jsonb_build_object('field', 'amount_cents', 'amount_cents', p_amount_cents));
    END IF;
END $$;

-- One line naming a booked transfer, for conflict messages.
CREATE FUNCTION ledger_describe(p_transfer_id bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT format('%s #%s of %s cents %s -> %s%s%s', t.kind, t.id, t.amount_cents, d.code, c.code,
                  CASE WHEN t.pending_id IS NOT NULL THEN format(' resolving hold #%s', t.pending_id) ELSE '' END,
                  coalesce((SELECT format(' (re-hold replacing hold #%s)', v.pending_id) FROM ledger_transfers v
                             WHERE v.idempotency_key = t.idempotency_key AND v.companion AND NOT t.companion),
                           ''))
    FROM ledger_transfers t
    JOIN ledger_accounts d ON d.id = t.debit_account_id
    JOIN ledger_accounts c ON c.id = t.credit_account_id
    WHERE t.id = p_transfer_id
$$;

-- The answer to a request whose key is already booked as p_transfer_id: the original transfer
-- (replayed) when the request digest matches, an idempotency_conflict naming both requests otherwise.
CREATE FUNCTION ledger_replay(p_transfer_id bigint, p_digest bytea, p_requested text)
RETURNS ledger_transfer_result LANGUAGE plpgsql AS $$
DECLARE
    v_found record;
BEGIN
    SELECT t.id, t.idempotency_key, t.kind::text AS kind, d.code AS debit_code, c.code AS credit_code,
           t.amount_cents::bigint AS amount_cents, t.pending_id, t.created_at, t.request_digest
      INTO STRICT v_found
      FROM ledger_transfers t
      JOIN ledger_accounts d ON d.id = t.debit_account_id
      JOIN ledger_accounts c ON c.id = t.credit_account_id
     WHERE t.id = p_transfer_id;
    IF v_found.request_digest <> p_digest THEN
        PERFORM ledger_fail('CX009',
            format('idempotency key %L was already used for %s; this request (%s) differs: use a new key',
                   v_found.idempotency_key, ledger_describe(v_found.id), p_requested),
            jsonb_build_object('idempotency_key', v_found.idempotency_key, 'existing', ledger_describe(v_found.id),
                               'requested', p_requested));
    END IF;
    RETURN ROW(v_found.id, v_found.idempotency_key, v_found.kind, v_found.debit_code, v_found.credit_code,
               v_found.amount_cents, v_found.pending_id, v_found.created_at, true)::ledger_transfer_result;
END $$;

-- Writes one transfer and its two entries (the accounts' totals right after it, passed in).
CREATE FUNCTION ledger_book(p_key text, p_companion boolean, p_digest bytea, p_kind ledger_transfer_kind,
                            p_debit ledger_accounts, p_credit ledger_accounts, p_amount_cents bigint,
                            p_pending_id bigint, p_now timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    WITH transfer AS (
        INSERT INTO ledger_transfers (idempotency_key, companion, request_digest, kind, debit_account_id,
                                      credit_account_id, amount_cents, pending_id, created_at)
        VALUES (p_key, p_companion, p_digest, p_kind, p_debit.id, p_credit.id, p_amount_cents, p_pending_id, p_now)
        RETURNING id
    ), entries AS (
        INSERT INTO ledger_entries
        SELECT p_debit.id, transfer.id, p_debit.debits_pending, p_debit.debits_posted, p_debit.credits_pending,
               p_debit.credits_posted, p_now FROM transfer
        UNION ALL
        SELECT p_credit.id, transfer.id, p_credit.debits_pending, p_credit.debits_posted,
               p_credit.credits_pending, p_credit.credits_posted, p_now FROM transfer
    )
    SELECT id INTO v_id FROM transfer;
    RETURN v_id;
END $$;

-- The hold a post, void or re-hold names, or hold_not_found.
CREATE FUNCTION ledger_require_hold(p_hold ledger_transfers, p_hold_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_hold.id IS NULL THEN
        PERFORM ledger_fail('CX005', format('hold #%s does not exist', p_hold_id),
                            jsonb_build_object('hold_id', p_hold_id, 'actual_kind', NULL::text));
    ELSIF p_hold.kind <> 'hold' THEN
        PERFORM ledger_fail('CX005', format('transfer #%s is not a hold: its kind is %s', p_hold_id, p_hold.kind),
                            jsonb_build_object('hold_id', p_hold_id, 'actual_kind', p_hold.kind));
    END IF;
END $$;

-- Locks the hold's exchange account (the first lock in the global order) and refuses a hold that was
-- already posted or voided. Every resolution of a hold takes this same lock first, so the check
-- cannot race; the unique index on pending_id is the backstop.
CREATE FUNCTION ledger_lock_open_hold(p_hold ledger_transfers) RETURNS ledger_accounts
LANGUAGE plpgsql AS $$
DECLARE
    v_exchange ledger_accounts;
    v_resolution record;
BEGIN
    SELECT * INTO STRICT v_exchange FROM ledger_accounts WHERE id = p_hold.credit_account_id FOR UPDATE;
    SELECT id, kind INTO v_resolution FROM ledger_transfers WHERE pending_id = p_hold.id;
    IF FOUND THEN
        PERFORM ledger_fail('CX006',
            format('hold #%s was already resolved by %s #%s', p_hold.id, v_resolution.kind, v_resolution.id),
            jsonb_build_object('hold_id', p_hold.id, 'resolution_kind', v_resolution.kind,
                               'resolution_id', v_resolution.id));
    END IF;
    RETURN v_exchange;
END $$;

-- Operations --------------------------------------------------------------------------------------------
-- The request texts below are hashed into request_digest: changing one would turn the replay of an
-- old key into a conflict, so they are frozen. A new operation gets a new text.

-- programme -> budget:<p>, posted; creates the budget on first use and tops it up afterwards.
CREATE FUNCTION ledger_allocate(p_key text, p_partnership_id text, p_amount_cents bigint)
RETURNS ledger_transfer_result LANGUAGE plpgsql AS $$
DECLARE
    v_request text := format('allocate %s cents from programme to budget:%s', p_amount_cents, p_partnership_id);
    v_digest bytea := sha256(convert_to(v_request, 'UTF8'));
    v_existing_id bigint;
    v_budget ledger_accounts;
    v_programme ledger_accounts;
    v_now timestamptz;
BEGIN
    IF NOT (ledger_valid_key(p_key) AND ledger_valid_id(p_partnership_id) AND ledger_valid_amount(p_amount_cents))
       IS TRUE THEN
        PERFORM ledger_refuse_request(p_key, ARRAY[p_partnership_id], ARRAY['partnership_id'], p_amount_cents, true);
    END IF;
    SELECT id INTO v_existing_id FROM ledger_transfers WHERE idempotency_key = p_key AND NOT companion;
    IF FOUND THEN
        RETURN ledger_replay(v_existing_id, v_digest, v_request);
    END IF;
    INSERT INTO ledger_accounts AS a (code, kind, partnership_id, debits_must_not_exceed_credits, credits_posted)
    VALUES ('budget:' || p_partnership_id, 'budget', p_partnership_id, true, p_amount_cents)
    ON CONFLICT (code) DO UPDATE SET credits_posted = a.credits_posted + EXCLUDED.credits_posted
    RETURNING * INTO v_budget;
    UPDATE ledger_accounts SET debits_posted = debits_posted + p_amount_cents
     WHERE code = 'programme' RETURNING * INTO v_programme;
    IF NOT FOUND THEN
        PERFORM ledger_fail('CX003', 'account programme does not exist: apply the ledger migrations',
                            jsonb_build_object('account', 'programme'));
    END IF;
    v_now := clock_timestamp();
    RETURN ROW(ledger_book(p_key, false, v_digest, 'allocate', v_programme, v_budget, p_amount_cents, NULL, v_now),
               p_key, 'allocate'::text, v_programme.code, v_budget.code, p_amount_cents, NULL::bigint, v_now, false);
END $$;

-- budget:<p> -> exchange:<e>, pending. This is the hot path (many holds on one budget), so the budget
-- check, the budget write, the transfer and its entries are one statement, and the budget row is
-- locked by the last statement of the transaction: its lock is held only for the inserts and commit.
CREATE FUNCTION ledger_hold(p_key text, p_partnership_id text, p_exchange_id text, p_amount_cents bigint)
RETURNS ledger_transfer_result LANGUAGE plpgsql AS $$
DECLARE
    v_request text := format('hold %s cents from budget:%s to exchange:%s',
                             p_amount_cents, p_partnership_id, p_exchange_id);
    v_digest bytea := sha256(convert_to(v_request, 'UTF8'));
    v_existing_id bigint;
    v_exchange ledger_accounts;
    v_budget ledger_accounts;
    v_result ledger_transfer_result;
BEGIN
    IF NOT (ledger_valid_key(p_key) AND ledger_valid_id(p_partnership_id) AND ledger_valid_id(p_exchange_id)
            AND ledger_valid_amount(p_amount_cents)) IS TRUE THEN
        PERFORM ledger_refuse_request(p_key, ARRAY[p_partnership_id, p_exchange_id],
                                      ARRAY['partnership_id', 'exchange_id'], p_amount_cents, true);
    END IF;
    SELECT id INTO v_existing_id FROM ledger_transfers WHERE idempotency_key = p_key AND NOT companion;
    IF FOUND THEN
        RETURN ledger_replay(v_existing_id, v_digest, v_request);
    END IF;
    -- First lock: the exchange account, created by its first hold (a refusal below rolls it back).
    INSERT INTO ledger_accounts AS a (code, kind, partnership_id, exchange_id, debits_must_not_exceed_credits,
                                      credits_pending)
    VALUES ('exchange:' || p_exchange_id, 'exchange', p_partnership_id, p_exchange_id, true, p_amount_cents)
    ON CONFLICT (code) DO UPDATE SET credits_pending = a.credits_pending + EXCLUDED.credits_pending
    RETURNING * INTO v_exchange;
    IF v_exchange.partnership_id <> p_partnership_id THEN
        PERFORM ledger_fail('CX001',
            format('partnership_id %s: exchange %s is funded from budget:%s', p_partnership_id, p_exchange_id,
                   v_exchange.partnership_id),
            jsonb_build_object('field', 'partnership_id',
                               'reason', format('exchange %s is funded from budget:%s, not budget:%s',
                                                p_exchange_id, v_exchange.partnership_id, p_partnership_id)));
    END IF;
    -- Second lock: the budget. The check is the WHERE clause of the write, re-evaluated on the latest
    -- committed row after any wait for the lock, so concurrent holds can never overspend. The id and
    -- the timestamp are drawn after the lock, which keeps them in booking order for this budget.
    WITH budget AS (
        UPDATE ledger_accounts SET debits_pending = debits_pending + p_amount_cents
         WHERE code = 'budget:' || p_partnership_id
           AND debits_pending + debits_posted + p_amount_cents <= credits_posted
        RETURNING *
    ), transfer AS (
        INSERT INTO ledger_transfers (idempotency_key, request_digest, kind, debit_account_id, credit_account_id,
                                      amount_cents, created_at)
        SELECT p_key, v_digest, 'hold', budget.id, v_exchange.id, p_amount_cents, clock_timestamp() FROM budget
        RETURNING id, created_at
    ), entries AS (
        INSERT INTO ledger_entries
        SELECT budget.id, transfer.id, budget.debits_pending, budget.debits_posted, budget.credits_pending,
               budget.credits_posted, transfer.created_at FROM budget, transfer
        UNION ALL
        SELECT v_exchange.id, transfer.id, v_exchange.debits_pending, v_exchange.debits_posted,
               v_exchange.credits_pending, v_exchange.credits_posted, transfer.created_at FROM transfer
    )
    SELECT transfer.id, p_key, 'hold'::text, budget.code, v_exchange.code, p_amount_cents, NULL::bigint,
           transfer.created_at, false
      INTO v_result FROM budget, transfer;
    IF FOUND THEN
        RETURN v_result;
    END IF;
    SELECT * INTO v_budget FROM ledger_accounts WHERE code = 'budget:' || p_partnership_id;
    IF NOT FOUND THEN
        PERFORM ledger_fail('CX003',
            format('account budget:%s does not exist: allocate to partnership %s first',
                   p_partnership_id, p_partnership_id),
            jsonb_build_object('account', 'budget:' || p_partnership_id));
    END IF;
    PERFORM ledger_fail('CX004',
        format('budget:%s cannot hold %s cents: %s cents available', p_partnership_id, p_amount_cents,
               v_budget.credits_posted - v_budget.debits_posted - v_budget.debits_pending),
        jsonb_build_object('partnership_id', p_partnership_id, 'requested_cents', p_amount_cents,
                           'available_cents',
                           v_budget.credits_posted - v_budget.debits_posted - v_budget.debits_pending));
    RETURN NULL;  -- not reached: ledger_fail raises
END $$;

-- Resolves an open hold: posts p_posted_cents of it (0 for a void) and returns the rest to the budget.
CREATE FUNCTION ledger_resolve(p_key text, p_digest bytea, p_kind ledger_transfer_kind, p_hold ledger_transfers,
                               p_posted_cents bigint) RETURNS ledger_transfer_result
LANGUAGE plpgsql AS $$
DECLARE
    v_budget ledger_accounts;
    v_exchange ledger_accounts;
    v_now timestamptz;
    v_amount bigint := CASE WHEN p_kind = 'void' THEN p_hold.amount_cents ELSE p_posted_cents END;
BEGIN
    v_exchange := ledger_lock_open_hold(p_hold);
    UPDATE ledger_accounts
       SET credits_pending = credits_pending - p_hold.amount_cents, credits_posted = credits_posted + p_posted_cents
     WHERE id = v_exchange.id RETURNING * INTO v_exchange;
    UPDATE ledger_accounts
       SET debits_pending = debits_pending - p_hold.amount_cents, debits_posted = debits_posted + p_posted_cents
     WHERE id = p_hold.debit_account_id RETURNING * INTO v_budget;
    v_now := clock_timestamp();
    RETURN ROW(ledger_book(p_key, false, p_digest, p_kind, v_budget, v_exchange, v_amount, p_hold.id, v_now),
               p_key, p_kind::text, v_budget.code, v_exchange.code, v_amount, p_hold.id, v_now, false);
END $$;

-- Posts all (p_amount_cents NULL) or part of a hold; the remainder returns to the budget.
CREATE FUNCTION ledger_post(p_key text, p_hold_id bigint, p_amount_cents bigint)
RETURNS ledger_transfer_result LANGUAGE plpgsql AS $$
DECLARE
    v_hold ledger_transfers;
    v_amount bigint;
    v_request text;
    v_digest bytea;
    v_existing_id bigint;
BEGIN
    IF NOT (ledger_valid_key(p_key) AND (p_amount_cents IS NULL OR ledger_valid_amount(p_amount_cents))) IS TRUE THEN
        PERFORM ledger_refuse_request(p_key, ARRAY[]::text[], ARRAY[]::text[], p_amount_cents,
                                      p_amount_cents IS NOT NULL);
    END IF;
    SELECT * INTO v_hold FROM ledger_transfers WHERE id = p_hold_id;
    -- "Post all" and "post exactly the hold's amount" are the same request (holds are immutable).
    v_amount := coalesce(p_amount_cents, CASE WHEN v_hold.kind = 'hold' THEN v_hold.amount_cents END);
    v_request := CASE WHEN v_amount IS NULL THEN format('post all of hold #%s', p_hold_id)
                      ELSE format('post %s cents of hold #%s', v_amount, p_hold_id) END;
    v_digest := sha256(convert_to(v_request, 'UTF8'));
    SELECT id INTO v_existing_id FROM ledger_transfers WHERE idempotency_key = p_key AND NOT companion;
    IF FOUND THEN
        RETURN ledger_replay(v_existing_id, v_digest, v_request);
    END IF;
    PERFORM ledger_require_hold(v_hold, p_hold_id);
    IF v_amount > v_hold.amount_cents THEN
        PERFORM ledger_fail('CX007',
            format('amount_cents %s exceeds hold #%s of %s cents', v_amount, p_hold_id, v_hold.amount_cents),
            jsonb_build_object('hold_id', p_hold_id, 'requested_cents', v_amount,
                               'hold_cents', v_hold.amount_cents));
    END IF;
    RETURN ledger_resolve(p_key, v_digest, 'post', v_hold, v_amount);
END $$;

-- Releases a hold in full.
CREATE FUNCTION ledger_void(p_key text, p_hold_id bigint)
RETURNS ledger_transfer_result LANGUAGE plpgsql AS $$
DECLARE
    v_hold ledger_transfers;
    v_request text := format('void hold #%s', p_hold_id);
    v_digest bytea := sha256(convert_to(v_request, 'UTF8'));
    v_existing_id bigint;
BEGIN
    IF NOT ledger_valid_key(p_key) IS TRUE THEN
        PERFORM ledger_refuse_request(p_key, ARRAY[]::text[], ARRAY[]::text[], NULL, false);
    END IF;
    SELECT id INTO v_existing_id FROM ledger_transfers WHERE idempotency_key = p_key AND NOT companion;
    IF FOUND THEN
        RETURN ledger_replay(v_existing_id, v_digest, v_request);
    END IF;
    SELECT * INTO v_hold FROM ledger_transfers WHERE id = p_hold_id;
    PERFORM ledger_require_hold(v_hold, p_hold_id);
    RETURN ledger_resolve(p_key, v_digest, 'void', v_hold, 0);
END $$;

-- Amendment: voids a hold and places a new one on the same budget and exchange, all or nothing.
-- Returns the new hold; the void is its companion (same key) and shows in the exchange's history.
CREATE FUNCTION ledger_rehold(p_key text, p_hold_id bigint, p_amount_cents bigint)
RETURNS ledger_transfer_result LANGUAGE plpgsql AS $$
DECLARE
    v_hold ledger_transfers;
    v_request text := format('re-hold hold #%s at %s cents', p_hold_id, p_amount_cents);
    v_digest bytea := sha256(convert_to(v_request, 'UTF8'));
    v_existing_id bigint;
    v_budget ledger_accounts;
    v_exchange ledger_accounts;
    v_budget_after_void ledger_accounts;
    v_exchange_after_void ledger_accounts;
    v_old bigint;
    v_now timestamptz;
BEGIN
    IF NOT (ledger_valid_key(p_key) AND ledger_valid_amount(p_amount_cents)) IS TRUE THEN
        PERFORM ledger_refuse_request(p_key, ARRAY[]::text[], ARRAY[]::text[], p_amount_cents, true);
    END IF;
    SELECT id INTO v_existing_id FROM ledger_transfers WHERE idempotency_key = p_key AND NOT companion;
    IF FOUND THEN
        RETURN ledger_replay(v_existing_id, v_digest, v_request);
    END IF;
    SELECT * INTO v_hold FROM ledger_transfers WHERE id = p_hold_id;
    PERFORM ledger_require_hold(v_hold, p_hold_id);
    v_old := v_hold.amount_cents;
    PERFORM ledger_lock_open_hold(v_hold);
    -- Releasing the old amount and holding the new one is one conditional write on the budget.
    UPDATE ledger_accounts SET debits_pending = debits_pending - v_old + p_amount_cents
     WHERE id = v_hold.debit_account_id
       AND debits_pending - v_old + p_amount_cents + debits_posted <= credits_posted
    RETURNING * INTO v_budget;
    IF NOT FOUND THEN
        SELECT * INTO STRICT v_budget FROM ledger_accounts WHERE id = v_hold.debit_account_id;
        PERFORM ledger_fail('CX004',
            format('budget:%s cannot re-hold %s cents: %s cents available counting the %s cents of hold #%s',
                   v_budget.partnership_id, p_amount_cents,
                   v_budget.credits_posted - v_budget.debits_posted - v_budget.debits_pending + v_old,
                   v_old, p_hold_id),
            jsonb_build_object('partnership_id', v_budget.partnership_id, 'requested_cents', p_amount_cents,
                               'available_cents',
                               v_budget.credits_posted - v_budget.debits_posted - v_budget.debits_pending + v_old));
    END IF;
    UPDATE ledger_accounts SET credits_pending = credits_pending - v_old + p_amount_cents
     WHERE id = v_hold.credit_account_id RETURNING * INTO v_exchange;
    v_now := clock_timestamp();
    -- The void's entries carry the totals between the two transfers.
    v_budget_after_void := v_budget;
    v_budget_after_void.debits_pending := v_budget.debits_pending - p_amount_cents;
    v_exchange_after_void := v_exchange;
    v_exchange_after_void.credits_pending := v_exchange.credits_pending - p_amount_cents;
    PERFORM ledger_book(p_key, true, v_digest, 'void', v_budget_after_void, v_exchange_after_void, v_old,
                        p_hold_id, v_now);
    RETURN ROW(ledger_book(p_key, false, v_digest, 'hold', v_budget, v_exchange, p_amount_cents, NULL, v_now),
               p_key, 'hold'::text, v_budget.code, v_exchange.code, p_amount_cents, NULL::bigint, v_now, false);
END $$;

-- exchange:<e> -> payouts, posted; never more than was posted to the exchange and not yet paid out.
CREATE FUNCTION ledger_pay_out(p_key text, p_exchange_id text, p_amount_cents bigint)
RETURNS ledger_transfer_result LANGUAGE plpgsql AS $$
DECLARE
    v_request text := format('pay out %s cents from exchange:%s', p_amount_cents, p_exchange_id);
    v_digest bytea := sha256(convert_to(v_request, 'UTF8'));
    v_existing_id bigint;
    v_exchange ledger_accounts;
    v_payouts ledger_accounts;
    v_now timestamptz;
BEGIN
    IF NOT (ledger_valid_key(p_key) AND ledger_valid_id(p_exchange_id) AND ledger_valid_amount(p_amount_cents))
       IS TRUE THEN
        PERFORM ledger_refuse_request(p_key, ARRAY[p_exchange_id], ARRAY['exchange_id'], p_amount_cents, true);
    END IF;
    SELECT id INTO v_existing_id FROM ledger_transfers WHERE idempotency_key = p_key AND NOT companion;
    IF FOUND THEN
        RETURN ledger_replay(v_existing_id, v_digest, v_request);
    END IF;
    UPDATE ledger_accounts SET debits_posted = debits_posted + p_amount_cents
     WHERE code = 'exchange:' || p_exchange_id
       AND debits_pending + debits_posted + p_amount_cents <= credits_posted
    RETURNING * INTO v_exchange;
    IF NOT FOUND THEN
        SELECT * INTO v_exchange FROM ledger_accounts WHERE code = 'exchange:' || p_exchange_id;
        IF NOT FOUND THEN
            PERFORM ledger_fail('CX003',
                format('account exchange:%s does not exist: nothing was ever held for exchange %s',
                       p_exchange_id, p_exchange_id),
                jsonb_build_object('account', 'exchange:' || p_exchange_id));
        END IF;
        PERFORM ledger_fail('CX008',
            format('exchange:%s cannot pay out %s cents: %s cents posted and not yet paid out', p_exchange_id,
                   p_amount_cents, v_exchange.credits_posted - v_exchange.debits_posted - v_exchange.debits_pending),
            jsonb_build_object('exchange_id', p_exchange_id, 'requested_cents', p_amount_cents,
                               'available_cents',
                               v_exchange.credits_posted - v_exchange.debits_posted - v_exchange.debits_pending));
    END IF;
    UPDATE ledger_accounts SET credits_posted = credits_posted + p_amount_cents
     WHERE code = 'payouts' RETURNING * INTO v_payouts;
    IF NOT FOUND THEN
        PERFORM ledger_fail('CX003', 'account payouts does not exist: apply the ledger migrations',
                            jsonb_build_object('account', 'payouts'));
    END IF;
    v_now := clock_timestamp();
    RETURN ROW(ledger_book(p_key, false, v_digest, 'pay_out', v_exchange, v_payouts, p_amount_cents, NULL, v_now),
               p_key, 'pay_out'::text, v_exchange.code, v_payouts.code, p_amount_cents, NULL::bigint, v_now, false);
END $$;
