//! Billing rows: pending checkouts, subscriptions and the Stripe events already applied.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sparebox_core::{AgentId, CommandId, HostId, Reserve, Tier};
use uuid::Uuid;

use crate::{AccountId, AgentRecord, CommandRecord, NewAgent};

/// Identifies a pending checkout (Stripe's `client_reference_id`).
pub type CheckoutId = Uuid;

/// A paid agent waiting for its payment: everything needed to create the agent once the
/// payment provider confirms the checkout. Its secrets are sealed, bound to the agent id
/// chosen now.
#[derive(Clone, Debug)]
pub struct NewCheckout {
    /// Its id, chosen by the caller.
    pub id: CheckoutId,
    /// The agent to create when the checkout completes.
    pub agent: NewAgent,
    /// The agreed price in cents per month.
    pub price_cents: u32,
}

/// A stored checkout.
#[derive(Clone, Debug)]
pub struct CheckoutRecord {
    /// Its id.
    pub id: CheckoutId,
    /// The agent to create (its `created_at` is when the checkout was made).
    pub agent: NewAgent,
    /// The agreed price in cents per month.
    pub price_cents: u32,
    /// When the checkout completed; `None` while pending.
    pub completed_at: Option<DateTime<Utc>>,
}

/// Where a subscription stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// Paid; the agent runs.
    Active,
    /// A payment failed; the agent keeps running while the provider retries.
    PastDue,
    /// Ended; the agent was undeployed. Terminal.
    Canceled,
    /// Paid, but the host had no room left when the payment arrived: no agent was
    /// created and the payment should be refunded by the operator.
    NeedsRefund,
}

impl SubscriptionStatus {
    /// The snake_case storage and API name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::NeedsRefund => "needs_refund",
        }
    }
}

impl std::str::FromStr for SubscriptionStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use SubscriptionStatus::*;
        [Active, PastDue, Canceled, NeedsRefund]
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown subscription status {s:?}"))
    }
}

impl std::fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionRecord {
    /// The payment provider's subscription id.
    pub id: String,
    /// The payment provider's customer id.
    pub customer: String,
    /// The checkout it came from.
    pub checkout: CheckoutId,
    /// The deployer's account.
    #[serde(skip)]
    pub owner: AccountId,
    /// The agent it pays for (never created when the status is `needs_refund`).
    pub agent: AgentId,
    /// The agent's host.
    pub host: HostId,
    /// The agent's tier.
    pub tier: Tier,
    /// The price in cents per month.
    pub price_cents: u32,
    /// Where it stands.
    pub status: SubscriptionStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

/// A payment provider event about to be applied.
#[derive(Clone, Debug)]
pub struct NewBillingEvent {
    /// The provider's event id; an id is applied at most once.
    pub id: String,
    /// The provider's event type, for the record.
    pub kind: String,
    /// When it arrived (server clock).
    pub received_at: DateTime<Utc>,
}

/// What a billing event changes, applied by [`crate::Store::apply_billing_event`].
#[derive(Clone, Debug)]
pub enum BillingEffect {
    /// Nothing beyond remembering the event id.
    Nothing,
    /// A checkout was paid: create the subscription, and the agent with its first deploy
    /// when the host still has room.
    CompleteCheckout {
        /// The checkout.
        checkout: CheckoutId,
        /// The provider's subscription id.
        subscription: String,
        /// The provider's customer id.
        customer: String,
        /// The id of the deploy command to queue.
        deploy: CommandId,
        /// What every host keeps for itself.
        reserve: Reserve,
    },
    /// A subscription changed status. Moving to [`SubscriptionStatus::Canceled`] queues an
    /// undeploy with this command id (unless the agent is already undeploying or gone) and
    /// moves the agent to `undeploying`; a canceled subscription never changes again.
    SetStatus {
        /// The provider's subscription id.
        subscription: String,
        /// The new status.
        status: SubscriptionStatus,
        /// The id of the undeploy command, used when the status is `canceled`.
        undeploy: CommandId,
    },
}

/// What applying a billing event did.
#[derive(Clone, Debug)]
pub enum BillingOutcome {
    /// The event id had been applied before: nothing changed.
    Replayed,
    /// The event was recorded; it changed nothing else (no effect, an unknown checkout or
    /// subscription, a checkout completed before, or a status already in place).
    Recorded,
    /// The checkout became a subscription, an agent and its queued deploy.
    Subscribed {
        /// The new subscription.
        subscription: SubscriptionRecord,
        /// The new agent, pending deploy (boxed: it is much larger than the other
        /// outcomes).
        agent: Box<AgentRecord>,
        /// Its deploy command.
        command: CommandRecord,
    },
    /// The checkout was paid but the host had no room: the subscription is `needs_refund`
    /// and no agent was created.
    NeedsRefund(SubscriptionRecord),
    /// A subscription changed status.
    StatusChanged {
        /// The subscription after the change.
        subscription: SubscriptionRecord,
        /// The undeploy queued for its agent, if any.
        undeploy: Option<CommandRecord>,
    },
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// Whether a subscription in `current` moves to `next`: canceled is terminal, and a
/// needs_refund subscription only moves to canceled.
pub(crate) fn status_changes(current: SubscriptionStatus, next: SubscriptionStatus) -> bool {
    current != next
        && current != SubscriptionStatus::Canceled
        && (current != SubscriptionStatus::NeedsRefund || next == SubscriptionStatus::Canceled)
}
