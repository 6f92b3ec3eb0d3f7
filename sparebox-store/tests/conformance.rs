//! One conformance suite for every `Store` backend.
//!
//! SQLite runs always. PostgreSQL runs when `SPAREBOX_TEST_POSTGRES_URL` points at a
//! server (each test gets its own fresh database there) and the crate is built with
//! `--features postgres`; without the URL its tests print a skip notice, or fail when the
//! `CI` environment variable is set. See the crate README.
#![cfg(any(feature = "sqlite", feature = "postgres"))]

mod common;

/// Generates one test per case for each backend; `postgres_only` cases need several
/// replicas that share wakeups, which only PostgreSQL provides.
macro_rules! conformance {
    (all: [$($case:ident),+ $(,)?], postgres_only: [$($pg_case:ident),* $(,)?] $(,)?) => {
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = crate::common::SqliteBackend::new();
                    crate::common::cases::$case(&backend).await;
                }
            )+
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(backend) = crate::common::pg::PgBackend::new().await else {
                        return;
                    };
                    crate::common::cases::$case(&backend).await;
                    backend.finish().await;
                }
            )+
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $pg_case() {
                    let Some(backend) = crate::common::pg::PgBackend::new().await else {
                        return;
                    };
                    crate::common::cases::$pg_case(&backend).await;
                    backend.finish().await;
                }
            )*
        }
    };
}

conformance! {
    all: [
        accounts_are_found_by_id_email_and_token_hash,
        account_email_taken_twice_is_a_conflict,
        first_token_for_another_account_is_invalid,
        account_roles_are_replaced,
        api_tokens_are_listed_and_revoked_only_by_their_owner,
        sessions_are_found_until_they_expire_or_are_deleted,
        hosts_are_listed_by_owner,
        rotated_host_key_replaces_the_old_one_at_once,
        host_settings_default_to_every_tier_and_are_replaced,
        agent_of_a_tier_not_offered_or_beyond_the_cap_is_refused,
        hosts_are_listed_oldest_first_and_found_by_id_and_key,
        host_of_unknown_account_is_not_found,
        heartbeat_records_hardware_isolation_and_version,
        heartbeat_for_unknown_host_is_not_found,
        created_agent_is_pending_deploy_with_a_pending_first_command,
        host_without_heartbeat_has_no_slot,
        agent_on_unknown_host_is_not_found,
        first_command_for_another_agent_is_invalid,
        full_host_refuses_an_agent_until_one_is_undeployed,
        agents_are_listed_by_owner_and_by_host_oldest_first,
        agent_update_changes_only_the_given_fields,
        update_of_unknown_agent_is_not_found,
        command_for_unknown_agent_or_wrong_host_is_refused,
        command_id_used_twice_is_a_conflict,
        newer_command_supersedes_pending_ones_it_replaces,
        delivery_sends_pending_commands_oldest_first_once,
        delivery_only_returns_the_hosts_own_commands,
        ack_and_nack_finish_sent_commands,
        duplicate_ack_changes_nothing,
        ack_from_another_host_is_unknown_and_changes_nothing,
        ack_for_undelivered_command_counts_as_delivery,
        late_ack_is_recorded_without_changing_an_expired_command,
        expiry_takes_only_open_commands_created_before_the_cutoff,
        expired_command_is_not_redelivered,
        delivered_command_waits_for_its_silent_host_until_the_delivered_cutoff,
        commands_for_agent_are_newest_first_and_limited,
        recent_commands_for_host_match_each_agents_latest,
        events_are_listed_newest_first_and_limited,
        timestamps_are_kept_to_the_microsecond,
        wakeup_fires_when_a_command_is_queued,
        reopening_keeps_data_and_reapplies_no_migration,
        racing_deliveries_hand_out_each_command_once,
        racing_creates_for_the_last_slot_have_one_winner,
        racing_creates_under_the_cap_have_one_winner,
        racing_acks_apply_once,
        checkout_completes_into_a_subscription_an_agent_and_its_deploy,
        replayed_billing_event_changes_nothing,
        checkout_completes_once,
        checkout_without_room_needs_refund_and_creates_no_agent,
        canceled_subscription_undeploys_its_agent_once,
        unknown_checkout_or_subscription_is_only_recorded,
        subscriptions_are_listed_by_owner_oldest_first,
        checkout_on_unknown_host_is_not_found,
        racing_replicas_apply_a_billing_event_once,
        samples_are_thinned_to_one_per_interval_and_read_oldest_first,
        samples_older_than_the_retention_are_pruned,
        sample_for_unknown_agent_is_not_found,
        heartbeat_reports_record_the_host_reports_and_thinned_samples,
        heartbeat_report_for_an_agent_changed_since_seen_is_not_written,
        heartbeat_reports_for_unknown_host_write_nothing,
        samples_are_pruned_before_a_time,
        silent_hosts_agents_are_listed_until_marked_offline,
        backups_are_listed_newest_first_and_pruned_to_the_retention,
        backup_of_unknown_agent_or_twice_is_refused,
        backup_schedules_are_claimed_once_per_interval,
        an_agent_is_reassigned_with_its_deploy_only_where_there_is_room,
        a_move_is_saved_replaced_listed_and_deleted,
        command_params_and_upgrade_image_round_trip,
        command_logs_are_replaced_on_reupload_and_deleted_when_expired,
        logs_for_unknown_command_are_not_found,
    ],
    postgres_only: [wakeup_reaches_another_replica],
}
