//! Host owners' operations (register, rotate the key, settings, their hosts) and browsing.

use std::collections::{BTreeMap, BTreeSet};

use sparebox_protocol::IsolationMode;
use sparebox_store::{HostSettings, Role};

use super::*;
use crate::views::{HostedAgent, OwnedHostView};

/// A host owner's settings as sent to `PUT /api/v1/hosts/{id}/settings`. The whole set is
/// replaced; absent fields take their defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostSettingsRequest {
    /// Tiers deployers may choose (`lite`, `standard`, `pro`, `compute`); every tier when
    /// absent, none (new agents paused) when empty.
    #[serde(default)]
    pub offered_tiers: Option<Vec<String>>,
    /// Price per offered tier in cents per month, 0 to 1,000,000. Only offered tiers may
    /// have a price. Shown to deployers; in Stripe mode it is what they pay, and a tier
    /// without a price cannot be checked out.
    #[serde(default)]
    pub prices: BTreeMap<String, i64>,
    /// The most agents the host runs at once, 1 to 1000; no cap when absent.
    #[serde(default)]
    pub max_agents: Option<i64>,
    /// A short region text (1 to 32 characters), such as `eu-west`.
    #[serde(default)]
    pub region: Option<String>,
}

/// Filters and order for browsing hosts (`GET /api/v1/hosts`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostFilter {
    /// Only hosts with this isolation mode: `docker`, `podman` or `profile`.
    #[serde(default)]
    pub isolation: Option<String>,
    /// Only hosts with a free slot of this tier.
    #[serde(default)]
    pub tier: Option<String>,
    /// With `true`, only hosts whose isolation is verified.
    #[serde(default)]
    pub verified: Option<bool>,
    /// `price`: cheapest first, by the price of `tier` when given, else by the host's
    /// lowest price; hosts without that price come last.
    #[serde(default)]
    pub sort: Option<String>,
}

impl Platform {
    /// Registers a host for `owner`; returns it with its key, shown only this once.
    ///
    /// # Errors
    ///
    /// Forbidden without the `host_owner` role; bad request for an empty or overlong name.
    pub async fn register_host(
        &self,
        owner: &AccountRecord,
        name: &str,
    ) -> Result<(HostView, String), PlatformError> {
        self.require_role(owner, Role::HostOwner, "registering a host")?;
        let name = validate::display_name("host name", name)?;
        let key = tokens::generate(tokens::HOST_KEY_PREFIX);
        let host = self
            .store
            .create_host(NewHost {
                owner: owner.id,
                name,
                key_hash: tokens::hash(&key),
                key_prefix: tokens::display_prefix(&key, tokens::HOST_KEY_PREFIX),
                created_at: self.clock.now(),
            })
            .await?;
        tracing::info!(host = %host.id, owner = %owner.id, "host registered");
        let view = self.host_view(&host, self.clock.now(), true).await?;
        Ok((view, key))
    }

    /// The host `id` if `owner` owns it.
    ///
    /// # Errors
    ///
    /// Not found when it does not exist or belongs to someone else (not distinguished, so
    /// ids cannot be probed).
    pub async fn owned_host(
        &self,
        owner: &AccountRecord,
        id: HostId,
    ) -> Result<HostRecord, PlatformError> {
        match self.store.host(id).await? {
            Some(host) if host.owner == owner.id => Ok(host),
            _ => Err(PlatformError::not_found(format!("host {id}"))),
        }
    }

    /// Replaces the key of a host its owner controls; returns the new key, shown only this
    /// once. The old key stops working at once, so the daemon must be given the new one.
    ///
    /// # Errors
    ///
    /// Not found for someone else's host.
    pub async fn rotate_host_key(
        &self,
        owner: &AccountRecord,
        id: HostId,
    ) -> Result<(HostView, String), PlatformError> {
        self.owned_host(owner, id).await?;
        let key = tokens::generate(tokens::HOST_KEY_PREFIX);
        let host = self
            .store
            .rotate_host_key(
                id,
                tokens::hash(&key),
                tokens::display_prefix(&key, tokens::HOST_KEY_PREFIX),
            )
            .await?;
        tracing::info!(host = %id, "host key rotated");
        let view = self.host_view(&host, self.clock.now(), true).await?;
        Ok((view, key))
    }

    /// Replaces the settings of a host its owner controls. Agents already there stay; the
    /// settings apply to new agents.
    ///
    /// # Errors
    ///
    /// Bad request for invalid settings (nothing changes then); not found for someone
    /// else's host.
    pub async fn set_host_settings(
        &self,
        owner: &AccountRecord,
        id: HostId,
        request: HostSettingsRequest,
    ) -> Result<HostView, PlatformError> {
        let settings = host_settings(request)?;
        self.owned_host(owner, id).await?;
        let host = self.store.set_host_settings(id, settings).await?;
        tracing::info!(host = %id, "host settings changed");
        self.host_view(&host, self.clock.now(), true).await
    }

    /// Every host with its offer and free slots, filtered and ordered by `filter`.
    ///
    /// Reads each host's agents one host at a time; fine for hundreds of hosts, a view in
    /// the store would be the next step beyond.
    ///
    /// # Errors
    ///
    /// Bad request for an unknown filter value.
    pub async fn browse_hosts(&self, filter: &HostFilter) -> Result<Vec<HostView>, PlatformError> {
        let isolation = filter
            .isolation
            .as_deref()
            .map(isolation_filter)
            .transpose()?;
        let tier = filter
            .tier
            .as_deref()
            .map(|t| validate::tier("tier", t))
            .transpose()?;
        let by_price = match filter.sort.as_deref() {
            None => false,
            Some("price") => true,
            Some(other) => {
                return Err(PlatformError::bad_request(format!(
                    "sort {other:?} is not supported: expected price"
                )))
            }
        };

        let now = self.clock.now();
        let mut views = Vec::new();
        for host in self.store.list_hosts().await? {
            let view = self.host_view(&host, now, false).await?;
            let keep = isolation.is_none_or(|mode| view.isolation == Some(mode))
                && tier.is_none_or(|t| view.free_slots.get(&t).copied().unwrap_or(0) > 0)
                && (filter.verified != Some(true) || view.isolation_verified);
            if keep {
                views.push(view);
            }
        }
        if by_price {
            views.sort_by_key(|v| price_key(v, tier));
        }
        Ok(views)
    }

    /// The hosts `owner` owns, each with the agents placed there (name, tier and state
    /// only: never the deployer's configuration or secrets).
    ///
    /// # Errors
    ///
    /// Forbidden without the `host_owner` role.
    pub async fn my_hosts(
        &self,
        owner: &AccountRecord,
    ) -> Result<Vec<OwnedHostView>, PlatformError> {
        self.require_role(owner, Role::HostOwner, "listing your hosts")?;
        let now = self.clock.now();
        let mut views = Vec::new();
        for host in self.store.hosts_for_owner(owner.id).await? {
            let agents = self.store.agents_for_host(host.id).await?;
            views.push(OwnedHostView {
                host: self.view_with_agents(&host, &agents, now, true),
                agents: agents
                    .iter()
                    .filter(|a| a.state != AgentState::Undeployed)
                    .map(HostedAgent::from)
                    .collect(),
            });
        }
        Ok(views)
    }

    pub(super) async fn host_view(
        &self,
        host: &HostRecord,
        now: DateTime<Utc>,
        for_owner: bool,
    ) -> Result<HostView, PlatformError> {
        let agents = self.store.agents_for_host(host.id).await?;
        Ok(self.view_with_agents(host, &agents, now, for_owner))
    }

    fn view_with_agents(
        &self,
        host: &HostRecord,
        agents: &[AgentRecord],
        now: DateTime<Utc>,
        for_owner: bool,
    ) -> HostView {
        HostView::new(
            host,
            agents,
            &self.config.reserve,
            self.is_online(host, now),
            for_owner,
        )
    }
}

/// Checks a settings request and turns it into stored settings.
fn host_settings(request: HostSettingsRequest) -> Result<HostSettings, PlatformError> {
    let offered: BTreeSet<Tier> = match &request.offered_tiers {
        None => Tier::ALL.into_iter().collect(),
        Some(names) => names
            .iter()
            .map(|n| validate::tier("offeredTiers", n))
            .collect::<Result<_, _>>()?,
    };
    let mut prices = BTreeMap::new();
    for (name, cents) in &request.prices {
        let tier = validate::tier("prices", name)?;
        if !offered.contains(&tier) {
            return Err(PlatformError::bad_request(format!(
                "prices: the {tier} tier is not offered, so it cannot have a price"
            )));
        }
        prices.insert(tier, validate::price(tier, *cents)?);
    }
    Ok(HostSettings {
        offered,
        prices,
        max_agents: request.max_agents.map(validate::max_agents).transpose()?,
        region: request
            .region
            .as_deref()
            .map(validate::region)
            .transpose()?,
    })
}

fn isolation_filter(name: &str) -> Result<IsolationMode, PlatformError> {
    match name {
        "docker" => Ok(IsolationMode::Docker),
        "podman" => Ok(IsolationMode::Podman),
        "profile" => Ok(IsolationMode::Profile),
        other => Err(PlatformError::bad_request(format!(
            "isolation {other:?} is not supported: expected docker, podman or profile"
        ))),
    }
}

/// Sort key for `sort=price`: hosts with a price first, cheapest first.
fn price_key(view: &HostView, tier: Option<Tier>) -> (bool, u32) {
    let price = match tier {
        Some(tier) => view.prices.get(&tier).copied(),
        None => view.prices.values().copied().min(),
    };
    (price.is_none(), price.unwrap_or(0))
}
