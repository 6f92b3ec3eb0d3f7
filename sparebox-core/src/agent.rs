//! Agent states as the platform sees them, and the stages of a deploy.
//!
//! These are the plain names that are stored and shown. The transitions between them, and
//! the data some states carry (deploy stage, error reason), live in [`crate::lifecycle`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The steps of a deploy, in order. Only [`DeployStage::Ready`] means the agent runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployStage {
    /// Fetching the signed configuration bundle from the platform.
    FetchingConfig,
    /// Making sure the agent image is present on the host.
    Pulling,
    /// Writing files and creating the container.
    Creating,
    /// Starting the container.
    Starting,
    /// Waiting for the agent to answer its health check.
    HealthCheck,
    /// Deployed and running.
    Ready,
}

impl DeployStage {
    /// Every stage, in order.
    pub const ALL: [DeployStage; 6] = [
        DeployStage::FetchingConfig,
        DeployStage::Pulling,
        DeployStage::Creating,
        DeployStage::Starting,
        DeployStage::HealthCheck,
        DeployStage::Ready,
    ];

    /// The snake_case wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeployStage::FetchingConfig => "fetching_config",
            DeployStage::Pulling => "pulling",
            DeployStage::Creating => "creating",
            DeployStage::Starting => "starting",
            DeployStage::HealthCheck => "health_check",
            DeployStage::Ready => "ready",
        }
    }

    /// Rough progress through a deploy, in percent, for progress displays.
    pub const fn progress_percent(self) -> u8 {
        match self {
            DeployStage::FetchingConfig => 10,
            DeployStage::Pulling => 25,
            DeployStage::Creating => 50,
            DeployStage::Starting => 70,
            DeployStage::HealthCheck => 85,
            DeployStage::Ready => 100,
        }
    }
}

impl fmt::Display for DeployStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An agent's state as the platform shows it to its deployer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Created; the deploy command has not reached the host yet.
    PendingDeploy,
    /// The host is deploying it.
    Deploying,
    /// Deployed and running.
    Running,
    /// Deployed and stopped.
    Stopped,
    /// Something went wrong; see the agent's error.
    Error,
    /// The host has stopped sending heartbeats.
    HostOffline,
    /// An undeploy has been requested and not yet confirmed.
    Undeploying,
    /// Removed from its host.
    Undeployed,
}

impl AgentState {
    /// Every state, in declaration order.
    pub const ALL: [AgentState; 8] = [
        AgentState::PendingDeploy,
        AgentState::Deploying,
        AgentState::Running,
        AgentState::Stopped,
        AgentState::Error,
        AgentState::HostOffline,
        AgentState::Undeploying,
        AgentState::Undeployed,
    ];

    /// The snake_case wire and storage name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AgentState::PendingDeploy => "pending_deploy",
            AgentState::Deploying => "deploying",
            AgentState::Running => "running",
            AgentState::Stopped => "stopped",
            AgentState::Error => "error",
            AgentState::HostOffline => "host_offline",
            AgentState::Undeploying => "undeploying",
            AgentState::Undeployed => "undeployed",
        }
    }

    /// Whether the agent still holds a slot on its host.
    pub const fn holds_slot(self) -> bool {
        !matches!(self, AgentState::Undeployed)
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An agent state name that Sparebox does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown agent state {0:?}")]
pub struct UnknownAgentState(pub String);

impl FromStr for AgentState {
    type Err = UnknownAgentState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownAgentState(s.to_owned()))
    }
}

/// A deploy stage name that Sparebox does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown deploy stage {0:?}")]
pub struct UnknownDeployStage(pub String);

impl FromStr for DeployStage {
    type Err = UnknownDeployStage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeployStage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| UnknownDeployStage(s.to_owned()))
    }
}
