-- The double-entry ledger: accounts with running totals, immutable two-phase transfers, entries with
-- running balances, and one PL/pgSQL function per operation (one round trip each).
-- Why this shape: docs/adr/0003-ledger-two-phase-transfers.md.
--
-- Money is integer euro cents (bigint). Every function runs under READ COMMITTED with row locks and
-- takes account locks in one global order: exchange accounts, then budgets, then the programme and
-- payouts accounts. The most contended rows come last, so their locks are held for the shortest time,
-- and no two ledger operations can wait for each other in a cycle.
--
-- Refusals raise SQLSTATE class CX with a JSON DETAIL whose keys are the constructor arguments of the
-- matching ledger.errors class; a raised error rolls the whole statement back, so a refusal writes
-- nothing.

-- Accounts ------------------------------------------------------------------------------------------

CREATE TABLE ledger_accounts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    kind            text NOT NULL CHECK (kind IN ('programme', 'budget', 'exchange', 'payouts')),
    -- Identifiers: 1-128 characters, no whitespace or control characters. (Length and a character
    -- class rather than one bounded regex such as {1,128}: the latter costs ~18 us per row written.)
    partnership_id  text CHECK (length(partnership_id) BETWEEN 1 AND 128 AND partnership_id !~ '[[:space:][:cntrl:]]'),
    exchange_id     text CHECK (length(exchange_id) BETWEEN 1 AND 128 AND exchange_id !~ '[[:space:][:cntrl:]]'),
    -- The flag that makes an account unable to spend more than it was given (TigerBeetle's
    -- debits_must_not_exceed_credits), counting pending holds as spent.
    debits_must_not_exceed_credits boolean NOT NULL,
    debits_pending  bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted   bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted  bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The backstop of the conditional UPDATEs in the functions below: even a hand-written UPDATE
    -- cannot overspend a flagged account.
    CONSTRAINT ledger_accounts_debits_within_credits
        CHECK (NOT debits_must_not_exceed_credits OR debits_pending + debits_posted <= credits_posted),
    -- Budgets and exchanges always carry the flag; the programme may go negative, payouts only receives.
    CONSTRAINT ledger_accounts_flag_by_kind
        CHECK (debits_must_not_exceed_credits = (kind IN ('budget', 'exchange'))),
    CONSTRAINT ledger_accounts_code_by_kind CHECK (
           (kind IN ('programme', 'payouts') AND code = kind AND partnership_id IS NULL AND exchange_id IS NULL)
        OR (kind = 'budget' AND code = 'budget:' || partnership_id AND exchange_id IS NULL)
        OR (kind = 'exchange' AND code = 'exchange:' || exchange_id AND partnership_id IS NOT NULL))
);

INSERT INTO ledger_accounts (code, kind, debits_must_not_exceed_credits)
VALUES ('programme', 'programme', false), ('payouts', 'payouts', false);

-- Transfers -----------------------------------------------------------------------------------------

CREATE TABLE ledger_transfers (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key   text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200 AND idempotency_key !~ '[[:cntrl:]]'),
    -- A re-hold is one request that books two transfers: the void of the old hold (the companion)
    -- and the new hold (the request's result). Both carry the request's key; only the result is unique.
    companion         boolean NOT NULL DEFAULT false,
    -- sha256 of the canonical request text (see the functions): same key + same digest is a replay.
    request_digest    bytea NOT NULL CHECK (octet_length(request_digest) = 32),
    kind              text NOT NULL CHECK (kind IN ('allocate', 'hold', 'post', 'void', 'pay_out')),
    debit_account_id  bigint NOT NULL REFERENCES ledger_accounts (id),
    credit_account_id bigint NOT NULL REFERENCES ledger_accounts (id),
    -- For a post: the amount posted (at most the hold's); for a void: the hold's amount released.
    amount_cents      bigint NOT NULL CHECK (amount_cents > 0),
    -- The hold a post or void resolves.
    pending_id        bigint REFERENCES ledger_transfers (id),
    created_at        timestamptz NOT NULL,
    CONSTRAINT ledger_transfers_two_accounts CHECK (debit_account_id <> credit_account_id),
    CONSTRAINT ledger_transfers_resolution_has_hold CHECK ((pending_id IS NOT NULL) = (kind IN ('post', 'void'))),
    CONSTRAINT ledger_transfers_companion_is_void CHECK (NOT companion OR kind = 'void')
);

-- One booking per idempotency key, also under concurrency: the loser of a race gets unique_violation
-- and the store calls again, which then finds the winner's transfer and replays or refuses it.
CREATE UNIQUE INDEX ledger_transfers_idempotency_key_uidx ON ledger_transfers (idempotency_key)
    WHERE NOT companion;
-- A hold resolves at most once: one post or one void, never both, never twice.
CREATE UNIQUE INDEX ledger_transfers_resolves_uidx ON ledger_transfers (pending_id)
    WHERE pending_id IS NOT NULL;

-- Entries: one per account per transfer, holding the account's running totals right after it. The
-- balance of any account as of any instant is its last entry at or before that instant.
CREATE TABLE ledger_entries (
    account_id      bigint NOT NULL REFERENCES ledger_accounts (id),
    transfer_id     bigint NOT NULL REFERENCES ledger_transfers (id),
    debits_pending  bigint NOT NULL CHECK (debits_pending >= 0),
    debits_posted   bigint NOT NULL CHECK (debits_posted >= 0),
    credits_pending bigint NOT NULL CHECK (credits_pending >= 0),
    credits_posted  bigint NOT NULL CHECK (credits_posted >= 0),
    created_at      timestamptz NOT NULL,
    -- Transfer ids grow in lock order per account (the id is drawn while the account row is locked,
    -- and identity sequences here are not cached per session), so (account, transfer) is the
    -- account's history in booking order.
    PRIMARY KEY (account_id, transfer_id)
);

-- Immutability ----------------------------------------------------------------------------------------

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
-- (`UPDATE OF` triggers fire only when those columns are assigned, so the hot path pays nothing.)
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

-- Helpers ---------------------------------------------------------------------------------------------

-- Largest amount one transfer may carry: 10 billion euros. A limit on everything (TIGER_STYLE); it
-- also keeps every running total far from bigint overflow.
CREATE FUNCTION ledger_max_amount_cents() RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT 1000000000000::bigint';

CREATE FUNCTION ledger_fail(p_sqlstate text, p_message text, p_detail jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = p_sqlstate, MESSAGE = p_message, DETAIL = p_detail::text;
END $$;

CREATE FUNCTION ledger_check_amount(p_field text, p_amount_cents bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_amount_cents IS NULL OR p_amount_cents <= 0 OR p_amount_cents > ledger_max_amount_cents() THEN
        PERFORM ledger_fail('CX002',
            format('%s must be a whole number of cents between 1 and %s, got %s',
                   p_field, ledger_max_amount_cents(), coalesce(p_amount_cents::text, 'null')),
            jsonb_build_object('field', p_field, 'amount_cents', p_amount_cents));
    END IF;
END $$;

-- One line naming a booked transfer, for conflict messages.
CREATE FUNCTION ledger_describe(p_transfer_id bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT format('%s #%s of %s cents %s -> %s%s%s', t.kind, t.id, t.amount_cents, d.code, c.code,
                  CASE WHEN t.pending_id IS NOT NULL THEN format(' resolving hold #%s', t.pending_id) ELSE '' END,
                  (SELECT format(' (re-hold replacing hold #%s)', v.pending_id) FROM ledger_transfers v
                    WHERE v.idempotency_key = t.idempotency_key AND v.companion AND NOT t.companion))
    FROM ledger_transfers t
    JOIN ledger_accounts d ON d.id = t.debit_account_id
    JOIN ledger_accounts c ON c.id = t.credit_account_id
    WHERE t.id = p_transfer_id
$$;

-- The earlier result of this idempotency key: NULL when the key is unused, the original transfer
-- (replayed) when the digest matches, and an idempotency_conflict naming both requests otherwise.
CREATE FUNCTION ledger_replay(p_key text, p_digest bytea, p_requested text) RETURNS ledger_transfer_result
LANGUAGE plpgsql AS $$
DECLARE
    v_found record;
BEGIN
    SELECT t.id, t.idempotency_key, t.kind, d.code AS debit_code, c.code AS credit_code, t.amount_cents,
           t.pending_id, t.created_at, t.request_digest
      INTO v_found
      FROM ledger_transfers t
      JOIN ledger_accounts d ON d.id = t.debit_account_id
      JOIN ledger_accounts c ON c.id = t.credit_account_id
     WHERE t.idempotency_key = p_key AND NOT t.companion;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF v_found.request_digest <> p_digest THEN
        PERFORM ledger_fail('CX009',
            format('idempotency key %L was already used for %s; this request (%s) differs: use a new key',
                   p_key, ledger_describe(v_found.id), p_requested),
            jsonb_build_object('idempotency_key', p_key, 'existing', ledger_describe(v_found.id),
                               'requested', p_requested));
    END IF;
    RETURN ROW(v_found.id, v_found.idempotency_key, v_found.kind, v_found.debit_code, v_found.credit_code,
               v_found.amount_cents, v_found.pending_id, v_found.created_at, true)::ledger_transfer_result;
END $$;

CREATE FUNCTION ledger_digest(p_request text) RETURNS bytea LANGUAGE sql IMMUTABLE
    AS 'SELECT sha256(convert_to(p_request, ''UTF8''))';

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

-- Locks the hold's exchange account (the first lock in the global order) and refuses a hold that
-- was already posted or voided. Every resolution of a hold takes this same lock first, so the check
-- cannot race; the unique index on pending_id is the backstop.
CREATE FUNCTION ledger_lock_open_hold(p_hold ledger_transfers) RETURNS ledger_accounts
LANGUAGE plpgsql AS $$
DECLARE
    v_exchange ledger_accounts;
    v_resolution record;
BEGIN
    SELECT * INTO v_exchange FROM ledger_accounts WHERE id = p_hold.credit_account_id FOR UPDATE;
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
-- old key into a conflict, so they are frozen. Add a new text for a new operation instead.

-- programme -> budget:<p>, posted; creates the budget on first use and tops it up afterwards.
CREATE FUNCTION ledger_allocate(p_key text, p_partnership_id text, p_amount_cents bigint)
RETURNS ledger_transfer_result LANGUAGE plpgsql AS $$
DECLARE
    v_request text := format('allocate %s cents from programme to budget:%s', p_amount_cents, p_partnership_id);
    v_digest bytea := ledger_digest(v_request);
    v_result ledger_transfer_result;
    v_budget ledger_accounts;
    v_programme ledger_accounts;
    v_now timestamptz;
    v_id bigint;
BEGIN
    PERFORM ledger_check_amount('amount_cents', p_amount_cents);
    v_result := ledger_replay(p_key, v_digest, v_request);
    IF v_result.id IS NOT NULL THEN
        RETURN v_result;
    END IF;
    INSERT INTO ledger_accounts AS a (code, kind, partnership_id, debits_must_not_exceed_credits, credits_posted)
    VALUES ('budget:' || p_partnership_id, 'budget', p_partnership_id, true, p_amount_cents)
    ON CONFLICT (code) DO UPDATE SET credits_posted = a.credits_posted + EXCLUDED.credits_posted
    RETURNING * INTO v_budget;
    UPDATE ledger_accounts SET debits_posted = debits_posted + p_amount_cents
     WHERE code = 'programme' RETURNING * INTO v_programme;
    IF NOT FOUND THEN
        PERFORM ledger_fail('CX003', 'account programme does not exist: run the ledger migrations',
                            jsonb_build_object('account', 'programme'));
    END IF;
    v_now := clock_timestamp();
    INSERT INTO ledger_transfers (idempotency_key, request_digest, kind, debit_account_id, credit_account_id,
                                  amount_cents, created_at)
    VALUES (p_key, v_digest, 'allocate', v_programme.id, v_budget.id, p_amount_cents, v_now)
    RETURNING id INTO v_id;
    INSERT INTO ledger_entries VALUES
        (v_programme.id, v_id, v_programme.debits_pending, v_programme.debits_posted,
         v_programme.credits_pending, v_programme.credits_posted, v_now),
        (v_budget.id, v_id, v_budget.debits_pending, v_budget.debits_posted,
         v_budget.credits_pending, v_budget.credits_posted, v_now);
    RETURN ROW(v_id, p_key, 'allocate'::text, v_programme.code, v_budget.code, p_amount_cents, NULL::bigint, v_now, false);
END $$;

-- budget:<p> -> exchange:<e>, pending. The budget check and the write are one conditional UPDATE.
CREATE FUNCTION ledger_hold(p_key text, p_partnership_id text, p_exchange_id text, p_amount_cents bigint)
RETURNS ledger_transfer_result LANGUAGE plpgsql AS $$
DECLARE
    v_request text := format('hold %s cents from budget:%s to exchange:%s',
                             p_amount_cents, p_partnership_id, p_exchange_id);
    v_digest bytea := ledger_digest(v_request);
    v_result ledger_transfer_result;
    v_budget ledger_accounts;
    v_exchange ledger_accounts;
    v_now timestamptz;
    v_id bigint;
BEGIN
    PERFORM ledger_check_amount('amount_cents', p_amount_cents);
    v_result := ledger_replay(p_key, v_digest, v_request);
    IF v_result.id IS NOT NULL THEN
        RETURN v_result;
    END IF;
    -- First lock: the exchange account, created on its first hold (a refusal below rolls it back).
    INSERT INTO ledger_accounts AS a (code, kind, partnership_id, exchange_id, debits_must_not_exceed_credits,
                                      credits_pending)
    VALUES ('exchange:' || p_exchange_id, 'exchange', p_partnership_id, p_exchange_id, true, p_amount_cents)
    ON CONFLICT (code) DO UPDATE SET credits_pending = a.credits_pending + EXCLUDED.credits_pending
    RETURNING * INTO v_exchange;
    IF v_exchange.partnership_id <> p_partnership_id THEN
        PERFORM ledger_fail('CX001',
            format('partnership_id %s: exchange %s is funded from budget:%s, not budget:%s',
                   p_partnership_id, p_exchange_id, v_exchange.partnership_id, p_partnership_id),
            jsonb_build_object('field', 'partnership_id',
                               'reason', format('exchange %s is funded from budget:%s, not budget:%s',
                                                p_exchange_id, v_exchange.partnership_id, p_partnership_id)));
    END IF;
    -- Second lock: the budget. The check is the WHERE clause of the write, evaluated on the latest
    -- committed row after any wait for its lock, so concurrent holds can never overspend.
    UPDATE ledger_accounts SET debits_pending = debits_pending + p_amount_cents
     WHERE code = 'budget:' || p_partnership_id
       AND debits_pending + debits_posted + p_amount_cents <= credits_posted
    RETURNING * INTO v_budget;
    IF NOT FOUND THEN
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
    END IF;
    v_now := clock_timestamp();
    INSERT INTO ledger_transfers (idempotency_key, request_digest, kind, debit_account_id, credit_account_id,
                                  amount_cents, created_at)
    VALUES (p_key, v_digest, 'hold', v_budget.id, v_exchange.id, p_amount_cents, v_now)
    RETURNING id INTO v_id;
    INSERT INTO ledger_entries VALUES
        (v_budget.id, v_id, v_budget.debits_pending, v_budget.debits_posted,
         v_budget.credits_pending, v_budget.credits_posted, v_now),
        (v_exchange.id, v_id, v_exchange.debits_pending, v_exchange.debits_posted,
         v_exchange.credits_pending, v_exchange.credits_posted, v_now);
    RETURN ROW(v_id, p_key, 'hold'::text, v_budget.code, v_exchange.code, p_amount_cents, NULL::bigint, v_now, false);
END $$;

-- Resolves a hold: posts p_posted_cents of it (0 = void) and returns the rest to the budget.
CREATE FUNCTION ledger_resolve(p_key text, p_digest bytea, p_kind text, p_hold ledger_transfers,
                               p_posted_cents bigint) RETURNS ledger_transfer_result
LANGUAGE plpgsql AS $$
DECLARE
    v_budget ledger_accounts;
    v_exchange ledger_accounts;
    v_now timestamptz;
    v_id bigint;
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
    INSERT INTO ledger_transfers (idempotency_key, request_digest, kind, debit_account_id, credit_account_id,
                                  amount_cents, pending_id, created_at)
    VALUES (p_key, p_digest, p_kind, v_budget.id, v_exchange.id, v_amount, p_hold.id, v_now)
    RETURNING id INTO v_id;
    INSERT INTO ledger_entries VALUES
        (v_budget.id, v_id, v_budget.debits_pending, v_budget.debits_posted,
         v_budget.credits_pending, v_budget.credits_posted, v_now),
        (v_exchange.id, v_id, v_exchange.debits_pending, v_exchange.debits_posted,
         v_exchange.credits_pending, v_exchange.credits_posted, v_now);
    RETURN ROW(v_id, p_key, p_kind, v_budget.code, v_exchange.code, v_amount, p_hold.id, v_now, false);
END $$;

-- Posts all (p_amount_cents NULL) or part of a hold; the remainder returns to the budget.
CREATE FUNCTION ledger_post(p_key text, p_hold_id bigint, p_amount_cents bigint)
RETURNS ledger_transfer_result LANGUAGE plpgsql AS $$
DECLARE
    v_hold ledger_transfers;
    v_amount bigint;
    v_request text;
    v_digest bytea;
    v_result ledger_transfer_result;
BEGIN
    IF p_amount_cents IS NOT NULL THEN
        PERFORM ledger_check_amount('amount_cents', p_amount_cents);
    END IF;
    SELECT * INTO v_hold FROM ledger_transfers WHERE id = p_hold_id;
    -- "Post all" and "post exactly the hold's amount" are the same request (holds are immutable).
    v_amount := coalesce(p_amount_cents, CASE WHEN v_hold.kind = 'hold' THEN v_hold.amount_cents END);
    v_request := CASE WHEN v_amount IS NULL THEN format('post all of hold #%s', p_hold_id)
                      ELSE format('post %s cents of hold #%s', v_amount, p_hold_id) END;
    v_digest := ledger_digest(v_request);
    v_result := ledger_replay(p_key, v_digest, v_request);
    IF v_result.id IS NOT NULL THEN
        RETURN v_result;
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
    v_digest bytea := ledger_digest(v_request);
    v_result ledger_transfer_result;
BEGIN
    v_result := ledger_replay(p_key, v_digest, v_request);
    IF v_result.id IS NOT NULL THEN
        RETURN v_result;
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
    v_digest bytea := ledger_digest(v_request);
    v_result ledger_transfer_result;
    v_budget ledger_accounts;
    v_exchange ledger_accounts;
    v_old bigint;
    v_now timestamptz;
    v_void_id bigint;
    v_id bigint;
BEGIN
    PERFORM ledger_check_amount('amount_cents', p_amount_cents);
    v_result := ledger_replay(p_key, v_digest, v_request);
    IF v_result.id IS NOT NULL THEN
        RETURN v_result;
    END IF;
    SELECT * INTO v_hold FROM ledger_transfers WHERE id = p_hold_id;
    PERFORM ledger_require_hold(v_hold, p_hold_id);
    v_old := v_hold.amount_cents;
    PERFORM ledger_lock_open_hold(v_hold);
    -- The old hold's amount is released and the new one held in the same conditional write.
    UPDATE ledger_accounts SET debits_pending = debits_pending - v_old + p_amount_cents
     WHERE id = v_hold.debit_account_id
       AND debits_pending - v_old + p_amount_cents + debits_posted <= credits_posted
    RETURNING * INTO v_budget;
    IF NOT FOUND THEN
        SELECT * INTO v_budget FROM ledger_accounts WHERE id = v_hold.debit_account_id;
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
    INSERT INTO ledger_transfers (idempotency_key, companion, request_digest, kind, debit_account_id,
                                  credit_account_id, amount_cents, pending_id, created_at)
    VALUES (p_key, true, v_digest, 'void', v_budget.id, v_exchange.id, v_old, p_hold_id, v_now)
    RETURNING id INTO v_void_id;
    INSERT INTO ledger_transfers (idempotency_key, request_digest, kind, debit_account_id, credit_account_id,
                                  amount_cents, created_at)
    VALUES (p_key, v_digest, 'hold', v_budget.id, v_exchange.id, p_amount_cents, v_now)
    RETURNING id INTO v_id;
    INSERT INTO ledger_entries VALUES
        (v_budget.id, v_void_id, v_budget.debits_pending - p_amount_cents, v_budget.debits_posted,
         v_budget.credits_pending, v_budget.credits_posted, v_now),
        (v_exchange.id, v_void_id, v_exchange.debits_pending, v_exchange.debits_posted,
         v_exchange.credits_pending - p_amount_cents, v_exchange.credits_posted, v_now),
        (v_budget.id, v_id, v_budget.debits_pending, v_budget.debits_posted,
         v_budget.credits_pending, v_budget.credits_posted, v_now),
        (v_exchange.id, v_id, v_exchange.debits_pending, v_exchange.debits_posted,
         v_exchange.credits_pending, v_exchange.credits_posted, v_now);
    RETURN ROW(v_id, p_key, 'hold'::text, v_budget.code, v_exchange.code, p_amount_cents, NULL::bigint, v_now, false);
END $$;

-- exchange:<e> -> payouts, posted; never more than was posted to the exchange and not yet paid.
CREATE FUNCTION ledger_pay_out(p_key text, p_exchange_id text, p_amount_cents bigint)
RETURNS ledger_transfer_result LANGUAGE plpgsql AS $$
DECLARE
    v_request text := format('pay out %s cents from exchange:%s', p_amount_cents, p_exchange_id);
    v_digest bytea := ledger_digest(v_request);
    v_result ledger_transfer_result;
    v_exchange ledger_accounts;
    v_payouts ledger_accounts;
    v_now timestamptz;
    v_id bigint;
BEGIN
    PERFORM ledger_check_amount('amount_cents', p_amount_cents);
    v_result := ledger_replay(p_key, v_digest, v_request);
    IF v_result.id IS NOT NULL THEN
        RETURN v_result;
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
            format('exchange:%s cannot pay out %s cents: %s cents posted and not yet paid', p_exchange_id,
                   p_amount_cents, v_exchange.credits_posted - v_exchange.debits_posted - v_exchange.debits_pending),
            jsonb_build_object('exchange_id', p_exchange_id, 'requested_cents', p_amount_cents,
                               'available_cents',
                               v_exchange.credits_posted - v_exchange.debits_posted - v_exchange.debits_pending));
    END IF;
    UPDATE ledger_accounts SET credits_posted = credits_posted + p_amount_cents
     WHERE code = 'payouts' RETURNING * INTO v_payouts;
    IF NOT FOUND THEN
        PERFORM ledger_fail('CX003', 'account payouts does not exist: run the ledger migrations',
                            jsonb_build_object('account', 'payouts'));
    END IF;
    v_now := clock_timestamp();
    INSERT INTO ledger_transfers (idempotency_key, request_digest, kind, debit_account_id, credit_account_id,
                                  amount_cents, created_at)
    VALUES (p_key, v_digest, 'pay_out', v_exchange.id, v_payouts.id, p_amount_cents, v_now)
    RETURNING id INTO v_id;
    INSERT INTO ledger_entries VALUES
        (v_exchange.id, v_id, v_exchange.debits_pending, v_exchange.debits_posted,
         v_exchange.credits_pending, v_exchange.credits_posted, v_now),
        (v_payouts.id, v_id, v_payouts.debits_pending, v_payouts.debits_posted,
         v_payouts.credits_pending, v_payouts.credits_posted, v_now);
    RETURN ROW(v_id, p_key, 'pay_out'::text, v_exchange.code, v_payouts.code, p_amount_cents, NULL::bigint, v_now, false);
END $$;
