//! Diesel's view of the tables in `migrations/` (the same in both trees).

diesel::table! {
    workers (name) {
        name -> Text,
        dest -> Text,
        version -> Text,
        threads -> Integer,
        empty_threads -> Integer,
        paused_threads -> Integer,
        running_threads -> Integer,
        waiting_threads -> Integer,
        error_threads -> Integer,
        first_seen_at -> Timestamp,
        last_ping_at -> Timestamp,
        draining -> Bool,
        threads_digest -> Nullable<BigInt>,
    }
}

diesel::table! {
    worker_threads (worker_name, thread_index) {
        worker_name -> Text,
        thread_index -> Integer,
        location -> Text,
        plan -> Text,
        job_id -> Nullable<Text>,
        job_state -> Text,
        job_stage -> Nullable<Text>,
        thread_state -> Text,
        state_since -> Timestamp,
        last_error -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sectors (miner_id, sector_number) {
        miner_id -> BigInt,
        sector_number -> BigInt,
        proof_type -> Integer,
        state -> Text,
        worker_name -> Nullable<Text>,
        location -> Nullable<Text>,
        ticket -> Nullable<Text>,
        seed -> Nullable<Text>,
        comm_r -> Nullable<Text>,
        comm_d -> Nullable<Text>,
        precommit_state -> Nullable<Text>,
        persist_store -> Nullable<Text>,
        proof -> Nullable<Text>,
        proof_state -> Nullable<Text>,
        abort_reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deadline_idx -> Nullable<Integer>,
        partition_idx -> Nullable<Integer>,
        proven_at -> Nullable<Timestamp>,
        owner -> Nullable<Text>,
        snap_state -> Nullable<Text>,
        snap_owner -> Nullable<Text>,
        update_comm_r -> Nullable<Text>,
        update_comm_d -> Nullable<Text>,
        update_store -> Nullable<Text>,
        update_proof -> Nullable<Text>,
        upgraded_at -> Nullable<Timestamp>,
        faulty_at -> Nullable<Timestamp>,
        fault_reason -> Nullable<Text>,
        imported_at -> Nullable<Timestamp>,
        aborted_from -> Nullable<Text>,
    }
}

diesel::table! {
    deals (deal_id) {
        deal_id -> BigInt,
        miner_id -> BigInt,
        piece_cid -> Text,
        piece_size -> BigInt,
        payload_size -> BigInt,
        client -> Text,
        start_epoch -> BigInt,
        end_epoch -> BigInt,
        price -> Text,
        state -> Text,
        sector_number -> Nullable<BigInt>,
        piece_offset -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    pieces (piece_cid) {
        piece_cid -> Text,
        payload -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sector_counters (miner_id) {
        miner_id -> BigInt,
        next_number -> BigInt,
    }
}

diesel::table! {
    stores (name) {
        name -> Text,
        path -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        target -> Text,
        detail -> Nullable<Text>,
        result -> Text,
    }
}

diesel::table! {
    wdpost_jobs (id) {
        id -> Text,
        miner_id -> BigInt,
        deadline_idx -> Integer,
        partitions -> Text,
        proof_type -> Text,
        sectors -> Integer,
        state -> Text,
        try_num -> Integer,
        worker_name -> Nullable<Text>,
        error_reason -> Nullable<Text>,
        deadline_open_at -> Timestamp,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        heartbeat_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
        input -> Text,
        output -> Nullable<Text>,
        attempt -> Nullable<Text>,
        deadline_close_at -> Nullable<Timestamp>,
        part_group -> Integer,
    }
}

diesel::table! {
    wdpost_jobs_archived (id) {
        id -> Text,
        miner_id -> BigInt,
        deadline_idx -> Integer,
        partitions -> Text,
        proof_type -> Text,
        sectors -> Integer,
        state -> Text,
        try_num -> Integer,
        worker_name -> Nullable<Text>,
        error_reason -> Nullable<Text>,
        deadline_open_at -> Timestamp,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        heartbeat_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
        input -> Text,
        output -> Nullable<Text>,
        attempt -> Nullable<Text>,
        deadline_close_at -> Nullable<Timestamp>,
        part_group -> Integer,
    }
}

diesel::table! {
    wdpost_missed (job_id) {
        job_id -> Text,
        miner_id -> BigInt,
        deadline_idx -> Integer,
        partitions -> Text,
        sectors -> Integer,
        deadline_open_at -> Timestamp,
        deadline_close_at -> Timestamp,
        reason -> Text,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    sector_rebuilds (miner_id, sector_number) {
        miner_id -> BigInt,
        sector_number -> BigInt,
        state -> Text,
        owner -> Nullable<Text>,
        requested_at -> Timestamp,
        updated_at -> Timestamp,
        rebuilt_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    unseal_tasks (miner_id, sector_number, piece_cid) {
        miner_id -> BigInt,
        sector_number -> BigInt,
        piece_cid -> Text,
        piece_offset -> BigInt,
        piece_size -> BigInt,
        payload_size -> BigInt,
        dest -> Text,
        upload_secret -> Text,
        state -> Text,
        owner -> Nullable<Text>,
        error_info -> Nullable<Text>,
        data -> Nullable<Binary>,
        requested_at -> Timestamp,
        updated_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    pledge_budget (worker_name) {
        worker_name -> Text,
        remaining -> Integer,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sched_log (id) {
        id -> BigInt,
        at -> Timestamp,
        worker_name -> Text,
        thread_index -> Nullable<Integer>,
        decision -> Text,
        work -> Text,
        reason -> Text,
    }
}

diesel::table! {
    worker_tokens (worker_name) {
        worker_name -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    store_reservations (miner_id, sector_number) {
        miner_id -> BigInt,
        sector_number -> BigInt,
        store_name -> Text,
        bytes -> BigInt,
        created_at -> Timestamp,
    }
}
