//! Paying for agents with Stripe: checkouts, the webhook, subscriptions.
//!
//! In Stripe mode ([`PlatformConfig::stripe`]) a deployer's agent request becomes a
//! pending checkout (secrets sealed, nothing reserved) and a Stripe Checkout Session.
//! Stripe's signed webhook then drives everything in one store transaction per event
//! ([`Store::apply_billing_event`]), at most once per event id:
//!
//! | event | effect |
//! |---|---|
//! | `checkout.session.completed` | subscription `active`, the agent and its deploy; `needs_refund` and no agent when the host's slot is gone |
//! | `customer.subscription.deleted` | subscription `canceled`; the agent is undeployed |
//! | `customer.subscription.updated` | status `canceled` or `unpaid`: as deleted; `past_due`: past due; `active`: active |
//! | `invoice.payment_failed` | subscription `past_due`; the agent keeps running while Stripe retries |
//! | anything else | recorded and ignored |

use sparebox_store::{
    BillingEffect, BillingOutcome, NewBillingEvent, NewCheckout, Role, SubscriptionRecord,
    SubscriptionStatus,
};

use super::*;
use crate::billing::{id_field, verify_signature, CheckoutSession, StripeEvent};
use crate::config::StripeConfig;

/// What a webhook call did, for the log and the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookResult {
    /// The event was applied.
    Applied,
    /// The event id had been applied before; nothing changed.
    Replayed,
    /// An event type Sparebox does not act on, or about something it does not know.
    Ignored,
}

impl WebhookResult {
    /// A short name for the response body.
    pub const fn as_str(self) -> &'static str {
        match self {
            WebhookResult::Applied => "applied",
            WebhookResult::Replayed => "replayed",
            WebhookResult::Ignored => "ignored",
        }
    }
}

impl Platform {
    fn stripe_config(&self) -> Result<&StripeConfig, PlatformError> {
        self.config.stripe.as_ref().ok_or_else(|| {
            PlatformError::new(
                ErrorCode::NotFound,
                "billing is not enabled on this server: create agents with POST /api/v1/agents",
            )
        })
    }

    /// Validates an agent request exactly as [`Platform::create_agent`] does, checks that
    /// the host offers the tier at a price and has a free slot now (reserving nothing),
    /// stores a pending checkout and creates a Stripe Checkout Session for it.
    ///
    /// # Errors
    ///
    /// Not found when billing is off or the host is unknown; forbidden without the
    /// `deployer` role; bad request for invalid input; conflict when the host does not
    /// offer the tier, has no price for it or no free slot; bad gateway when Stripe fails
    /// (nothing is stored then).
    pub async fn start_checkout(
        &self,
        owner: &AccountRecord,
        request: AgentRequest,
    ) -> Result<CheckoutSession, PlatformError> {
        self.require_role(owner, Role::Deployer, "starting a checkout")?;
        let stripe = self.stripe_config()?;
        let agent = self.prepare_agent(owner, request).await?;
        let host = self
            .store
            .host(agent.host)
            .await?
            .ok_or_else(|| PlatformError::not_found(format!("host {}", agent.host)))?;
        let tier = agent.tier;
        if !host.settings.offered.contains(&tier) {
            return Err(PlatformError::new(
                ErrorCode::Conflict,
                format!("host {} does not offer the {tier} tier", host.id),
            ));
        }
        let price = *host.settings.prices.get(&tier).ok_or_else(|| {
            PlatformError::new(
                ErrorCode::Conflict,
                format!(
                    "host {} has no price for the {tier} tier, so it cannot be paid for",
                    host.id
                ),
            )
        })?;
        let view = self.host_view(&host, self.clock.now(), false).await?;
        if view.free_slots.get(&tier).copied().unwrap_or(0) == 0 {
            return Err(PlatformError::new(
                ErrorCode::Conflict,
                format!("host {} has no free slot for a {tier} agent", host.id),
            ));
        }

        let checkout_id = uuid::Uuid::new_v4();
        let (session_id, url) = self
            .stripe
            .create_session(stripe, checkout_id, tier, price)
            .await?;
        let agent_id = agent.id;
        self.store
            .create_checkout(NewCheckout {
                id: checkout_id,
                agent,
                price_cents: price,
            })
            .await?;
        tracing::info!(checkout = %checkout_id, agent = %agent_id, host = %host.id, tier = %tier, "checkout started");
        Ok(CheckoutSession {
            checkout_id,
            session_id,
            url,
        })
    }

    /// Handles a Stripe webhook call: checks the signature against the raw `payload`
    /// with the platform's clock, then applies the event once (see the module table).
    ///
    /// # Errors
    ///
    /// Not found when billing is off; bad request for a missing, malformed, stale or
    /// wrong signature and for a payload that is not a Stripe event. Nothing changes then.
    pub async fn stripe_webhook(
        &self,
        signature: Option<&str>,
        payload: &[u8],
    ) -> Result<WebhookResult, PlatformError> {
        let stripe = self.stripe_config()?;
        let now = self.clock.now();
        verify_signature(signature, payload, stripe.webhook_secret.expose(), now)?;
        let event: StripeEvent = serde_json::from_slice(payload)
            .map_err(|err| PlatformError::bad_request(format!("invalid stripe event: {err}")))?;
        let object = &event.data.object;
        let status_of = |status: SubscriptionStatus, id: Option<String>| {
            id.map(|subscription| BillingEffect::SetStatus {
                subscription,
                status,
                undeploy: CommandId::new_random(),
            })
        };
        let effect = match event.kind.as_str() {
            "checkout.session.completed" => checkout_completed(object, self.config.reserve),
            "customer.subscription.deleted" => {
                status_of(SubscriptionStatus::Canceled, id_field(&object["id"]))
            }
            "customer.subscription.updated" => {
                let status = match object["status"].as_str() {
                    Some("canceled" | "unpaid") => Some(SubscriptionStatus::Canceled),
                    Some("past_due") => Some(SubscriptionStatus::PastDue),
                    Some("active") => Some(SubscriptionStatus::Active),
                    _ => None,
                };
                status.and_then(|status| status_of(status, id_field(&object["id"])))
            }
            "invoice.payment_failed" => {
                // Older API versions name the subscription on the invoice, newer ones
                // under its parent.
                let id = id_field(&object["subscription"]).or_else(|| {
                    id_field(&object["parent"]["subscription_details"]["subscription"])
                });
                status_of(SubscriptionStatus::PastDue, id)
            }
            _ => None,
        };
        let acting = effect.is_some();
        let outcome = self
            .store
            .apply_billing_event(
                NewBillingEvent {
                    id: event.id.clone(),
                    kind: event.kind.clone(),
                    received_at: now,
                },
                effect.unwrap_or(BillingEffect::Nothing),
            )
            .await?;
        let result = match outcome {
            BillingOutcome::Replayed => WebhookResult::Replayed,
            BillingOutcome::Recorded if acting => {
                tracing::info!(event = %event.id, kind = %event.kind, "stripe event changed nothing");
                WebhookResult::Ignored
            }
            BillingOutcome::Recorded => WebhookResult::Ignored,
            BillingOutcome::Subscribed {
                subscription,
                agent,
                command,
            } => {
                tracing::info!(subscription = %subscription.id, agent = %agent.id, command = %command.id, "checkout paid: agent created, deploy queued");
                WebhookResult::Applied
            }
            BillingOutcome::NeedsRefund(subscription) => {
                tracing::warn!(subscription = %subscription.id, checkout = %subscription.checkout, host = %subscription.host, "checkout paid but the host has no free slot any more: refund needed");
                WebhookResult::Applied
            }
            BillingOutcome::StatusChanged {
                subscription,
                undeploy,
            } => {
                tracing::info!(subscription = %subscription.id, status = %subscription.status, undeploy = ?undeploy.map(|c| c.id), "subscription status changed");
                WebhookResult::Applied
            }
        };
        Ok(result)
    }

    /// The subscriptions `owner` pays for.
    ///
    /// # Errors
    ///
    /// Internal on storage failure.
    pub async fn subscriptions(
        &self,
        owner: &AccountRecord,
    ) -> Result<Vec<SubscriptionRecord>, PlatformError> {
        Ok(self.store.subscriptions_for_owner(owner.id).await?)
    }
}

/// The effect of `checkout.session.completed`; `None` for a session that is not a
/// Sparebox checkout (no or a foreign `client_reference_id`, no subscription).
fn checkout_completed(
    session: &serde_json::Value,
    reserve: sparebox_core::Reserve,
) -> Option<BillingEffect> {
    let checkout = session["client_reference_id"]
        .as_str()
        .and_then(|id| id.parse::<uuid::Uuid>().ok())?;
    let Some(subscription) = id_field(&session["subscription"]) else {
        // Not a subscription-mode session, so not one Sparebox created.
        tracing::warn!(checkout = %checkout, "completed checkout session without a subscription ignored");
        return None;
    };
    let customer = id_field(&session["customer"]).unwrap_or_default();
    Some(BillingEffect::CompleteCheckout {
        checkout,
        subscription,
        customer,
        deploy: CommandId::new_random(),
        reserve,
    })
}
