//! Billing operations of [`SqliteStore`]: checkouts, subscriptions, payment events.

use chrono::{DateTime, Utc};
use sparebox_core::{AgentState, CommandKind, HostId, Reserve};
use sqlx::{Row, Sqlite, Transaction};

use super::rows::{self, micros, AGENT_COLUMNS, CHECKOUT_COLUMNS, SUBSCRIPTION_COLUMNS};
use super::{host_in, insert_command, not_found, slot_holders, supersede_pending, SqliteStore};
use crate::billing::status_changes;
use crate::codec::{check_placement, db_error, to_json};
use crate::{
    wakeup, AgentRecord, BillingEffect, BillingOutcome, CheckoutId, CheckoutRecord, NewAgent,
    NewBillingEvent, NewCheckout, NewCommand, StoreError, StoreResult, SubscriptionRecord,
    SubscriptionStatus,
};

type Tx = Transaction<'static, Sqlite>;

impl SqliteStore {
    pub(super) async fn insert_checkout(&self, new: NewCheckout) -> StoreResult<CheckoutRecord> {
        let agent = &new.agent;
        let sql = format!(
            "INSERT INTO checkouts (id, agent, owner, host, name, tier, image, openclaw_config, \
             workspace_files, sealed_secrets, price_cents, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {CHECKOUT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(new.id.to_string())
            .bind(agent.id.to_string())
            .bind(agent.owner.to_string())
            .bind(agent.host.to_string())
            .bind(&agent.name)
            .bind(agent.tier.as_str())
            .bind(&agent.image)
            .bind(to_json("checkouts.openclaw_config", &agent.openclaw_config)?.to_string())
            .bind(to_json("checkouts.workspace_files", &agent.workspace_files)?.to_string())
            .bind(&agent.sealed_secrets)
            .bind(i64::from(new.price_cents))
            .bind(micros(agent.created_at))
            .fetch_one(&self.writer)
            .await
            .map_err(|err| {
                db_error(
                    err,
                    || format!("checkout {} or agent {}", new.id, agent.id),
                    || not_found("host or account", format!("{}/{}", agent.host, agent.owner)),
                )
            })?;
        rows::checkout(&row)
    }

    pub(super) async fn select_checkout(
        &self,
        id: CheckoutId,
    ) -> StoreResult<Option<CheckoutRecord>> {
        let sql = format!("SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::checkout).transpose()
    }

    pub(super) async fn owner_subscriptions(
        &self,
        owner: crate::AccountId,
    ) -> StoreResult<Vec<SubscriptionRecord>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE owner = ? \
             ORDER BY created_at, rowid"
        );
        let rows = sqlx::query(&sql)
            .bind(owner.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::subscription).collect()
    }

    pub(super) async fn select_subscription(
        &self,
        id: &str,
    ) -> StoreResult<Option<SubscriptionRecord>> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::subscription).transpose()
    }

    pub(super) async fn billing_event(
        &self,
        event: NewBillingEvent,
        effect: BillingEffect,
    ) -> StoreResult<BillingOutcome> {
        let mut tx = self.write().await?;
        let recorded = sqlx::query(
            "INSERT INTO billing_events (id, kind, received_at) VALUES (?, ?, ?) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(&event.kind)
        .bind(micros(event.received_at))
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() == 0 {
            return Ok(BillingOutcome::Replayed);
        }
        let now = event.received_at;
        let (outcome, woken) = match effect {
            BillingEffect::Nothing => (BillingOutcome::Recorded, None),
            BillingEffect::CompleteCheckout {
                checkout,
                subscription,
                customer,
                deploy,
                reserve,
            } => {
                let Some(pending) = checkout_in(&mut tx, checkout).await? else {
                    tx.commit().await?;
                    return Ok(BillingOutcome::Recorded);
                };
                if pending.completed_at.is_some() {
                    tx.commit().await?;
                    return Ok(BillingOutcome::Recorded);
                }
                sqlx::query("UPDATE checkouts SET completed_at = ? WHERE id = ?")
                    .bind(micros(now))
                    .bind(checkout.to_string())
                    .execute(&mut *tx)
                    .await?;
                let agent = pending.agent;
                let placed = has_room(&mut tx, &agent, reserve).await?;
                let status = if placed {
                    SubscriptionStatus::Active
                } else {
                    SubscriptionStatus::NeedsRefund
                };
                let sub = SubscriptionRecord {
                    id: subscription,
                    customer,
                    checkout,
                    owner: agent.owner,
                    agent: agent.id,
                    host: agent.host,
                    tier: agent.tier,
                    price_cents: pending.price_cents,
                    status,
                    created_at: now,
                    updated_at: now,
                };
                insert_subscription(&mut tx, &sub).await?;
                if placed {
                    let record = insert_agent(&mut tx, &agent).await?;
                    let command = insert_command(
                        &mut tx,
                        &NewCommand {
                            id: deploy,
                            agent: agent.id,
                            host: agent.host,
                            kind: CommandKind::Deploy,
                            created_at: now,
                            params: None,
                            image: None,
                        },
                    )
                    .await?;
                    (
                        BillingOutcome::Subscribed {
                            subscription: sub,
                            agent: Box::new(record),
                            command,
                        },
                        Some(agent.host),
                    )
                } else {
                    (BillingOutcome::NeedsRefund(sub), None)
                }
            }
            BillingEffect::SetStatus {
                subscription,
                status,
                undeploy,
            } => {
                let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = ?");
                let row = sqlx::query(&sql)
                    .bind(&subscription)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(mut sub) = row.as_ref().map(rows::subscription).transpose()? else {
                    tx.commit().await?;
                    return Ok(BillingOutcome::Recorded);
                };
                if !status_changes(sub.status, status) {
                    tx.commit().await?;
                    return Ok(BillingOutcome::Recorded);
                }
                sqlx::query("UPDATE subscriptions SET status = ?, updated_at = ? WHERE id = ?")
                    .bind(status.as_str())
                    .bind(micros(now))
                    .bind(&subscription)
                    .execute(&mut *tx)
                    .await?;
                sub.status = status;
                sub.updated_at = now;
                let mut queued = None;
                if status == SubscriptionStatus::Canceled {
                    queued = undeploy_agent(&mut tx, &sub, undeploy, now).await?;
                }
                let woken = queued.as_ref().map(|c| c.host);
                (
                    BillingOutcome::StatusChanged {
                        subscription: sub,
                        undeploy: queued,
                    },
                    woken,
                )
            }
        };
        tx.commit().await?;
        if let Some(host) = woken {
            wakeup::wake(&self.wakeups, host);
        }
        Ok(outcome)
    }
}

async fn checkout_in(tx: &mut Tx, id: CheckoutId) -> StoreResult<Option<CheckoutRecord>> {
    let sql = format!("SELECT {CHECKOUT_COLUMNS} FROM checkouts WHERE id = ?");
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(rows::checkout).transpose()
}

/// Whether the agent's host can take it now; refusals other than room are errors.
async fn has_room(tx: &mut Tx, agent: &NewAgent, reserve: Reserve) -> StoreResult<bool> {
    let host = host_in(tx, agent.host).await?;
    let holders = slot_holders(tx, agent.host).await?;
    match check_placement(
        host.id,
        host.hardware.as_ref(),
        &host.settings,
        &reserve,
        holders,
        agent.tier,
    ) {
        Ok(()) => Ok(true),
        Err(StoreError::NoSlot { .. } | StoreError::NotOffered { .. })
        | Err(StoreError::HostAtCap { .. }) => Ok(false),
        Err(other) => Err(other),
    }
}

async fn insert_subscription(tx: &mut Tx, sub: &SubscriptionRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO subscriptions (id, customer, checkout, owner, agent, host, tier, \
         price_cents, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&sub.id)
    .bind(&sub.customer)
    .bind(sub.checkout.to_string())
    .bind(sub.owner.to_string())
    .bind(sub.agent.to_string())
    .bind(sub.host.to_string())
    .bind(sub.tier.as_str())
    .bind(i64::from(sub.price_cents))
    .bind(sub.status.as_str())
    .bind(micros(sub.created_at))
    .bind(micros(sub.updated_at))
    .execute(&mut **tx)
    .await
    .map_err(|err| {
        db_error(
            err,
            || format!("subscription {}", sub.id),
            || not_found("account", sub.owner),
        )
    })?;
    Ok(())
}

/// Inserts `new` as a pending-deploy agent; the caller has checked placement.
pub(super) async fn insert_agent(tx: &mut Tx, new: &NewAgent) -> StoreResult<AgentRecord> {
    let sql = format!(
        "INSERT INTO agents (id, host, owner, name, tier, image, openclaw_config, \
         workspace_files, sealed_secrets, state, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {AGENT_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(new.id.to_string())
        .bind(new.host.to_string())
        .bind(new.owner.to_string())
        .bind(&new.name)
        .bind(new.tier.as_str())
        .bind(&new.image)
        .bind(to_json("agents.openclaw_config", &new.openclaw_config)?.to_string())
        .bind(to_json("agents.workspace_files", &new.workspace_files)?.to_string())
        .bind(&new.sealed_secrets)
        .bind(AgentState::PendingDeploy.as_str())
        .bind(micros(new.created_at))
        .fetch_one(&mut **tx)
        .await
        .map_err(|err| {
            db_error(
                err,
                || format!("agent {}", new.id),
                || not_found("account", new.owner),
            )
        })?;
    rows::agent(&row)
}

/// Queues an undeploy for the subscription's agent and moves it to undeploying, unless it
/// does not exist or is already undeploying or undeployed.
async fn undeploy_agent(
    tx: &mut Tx,
    sub: &SubscriptionRecord,
    id: sparebox_core::CommandId,
    now: DateTime<Utc>,
) -> StoreResult<Option<crate::CommandRecord>> {
    let row = sqlx::query("SELECT host, state FROM agents WHERE id = ?")
        .bind(sub.agent.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let state: String = row.try_get("state")?;
    let state: AgentState = crate::codec::parse_name("agents.state", &state)?;
    if matches!(state, AgentState::Undeploying | AgentState::Undeployed) {
        return Ok(None);
    }
    let host: String = row.try_get("host")?;
    let host: HostId = crate::codec::parse_name::<uuid::Uuid>("agents.host", &host)?.into();
    let new = NewCommand {
        id,
        agent: sub.agent,
        host,
        kind: CommandKind::Undeploy,
        created_at: now,
        params: None,
        image: None,
    };
    supersede_pending(tx, &new).await?;
    let command = insert_command(tx, &new).await?;
    sqlx::query("UPDATE agents SET state = ?, deploy_stage = NULL, error = NULL WHERE id = ?")
        .bind(AgentState::Undeploying.as_str())
        .bind(sub.agent.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(Some(command))
}
