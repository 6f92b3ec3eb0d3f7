//! The dedicated bridge network agents run on, with inter-container traffic disabled.

use std::collections::HashMap;

use bollard::models::{Network, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptions;
use bollard::Docker;
use tokio::sync::Mutex;

/// The bridge network every agent container is attached to.
pub const AGENT_NETWORK: &str = "sparebox-agents";

/// The bridge driver option that stops containers on the network from reaching each other.
const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";

/// Serialises look-up-then-create within this process. Engines before API 1.44 accept a
/// second network with the same name, so two concurrent creations would make the name
/// ambiguous.
static CREATE_LOCK: Mutex<()> = Mutex::const_new(());

/// Why the agent network could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NetworkError {
    /// The engine failed a call.
    #[error("network {AGENT_NETWORK}: {0}")]
    Engine(#[from] bollard::errors::Error),
    /// A network of that name exists but lets containers talk to each other.
    #[error("network {AGENT_NETWORK} {id} allows inter-container traffic; remove it so it can be recreated with {ICC_OPTION}=false")]
    IccEnabled {
        /// The network's id.
        id: String,
    },
}

/// The id of the agent network, created when missing. When another process created a
/// duplicate at the same time, every caller settles on the same one (oldest, then lowest id).
pub(crate) async fn ensure_agent_network(docker: &Docker) -> Result<String, NetworkError> {
    let _guard = CREATE_LOCK.lock().await;

    let network = match find(docker).await? {
        Some(network) => network,
        None => {
            create(docker).await?;
            find(docker).await?.ok_or_else(|| {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    message: "created but not listed".to_owned(),
                }
            })?
        }
    };

    let id = network.id.clone().unwrap_or_default();
    let icc = network
        .options
        .as_ref()
        .and_then(|o| o.get(ICC_OPTION))
        .map(String::as_str);
    if icc != Some("false") {
        return Err(NetworkError::IccEnabled { id });
    }
    Ok(id)
}

async fn find(docker: &Docker) -> Result<Option<Network>, bollard::errors::Error> {
    let options = ListNetworksOptions {
        filters: Some(HashMap::from([(
            "name".to_owned(),
            vec![AGENT_NETWORK.to_owned()],
        )])),
    };
    let mut networks: Vec<Network> = docker
        .list_networks(Some(options))
        .await?
        .into_iter()
        // The name filter matches substrings.
        .filter(|n| n.name.as_deref() == Some(AGENT_NETWORK))
        .collect();
    networks.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
    Ok(networks.into_iter().next())
}

async fn create(docker: &Docker) -> Result<(), bollard::errors::Error> {
    tracing::info!(network = AGENT_NETWORK, "creating agent network");
    let request = NetworkCreateRequest {
        name: AGENT_NETWORK.to_owned(),
        driver: Some("bridge".to_owned()),
        options: Some(HashMap::from([(ICC_OPTION.to_owned(), "false".to_owned())])),
        labels: Some(HashMap::from([(
            "dev.sparebox.network".to_owned(),
            "agents".to_owned(),
        )])),
        ..Default::default()
    };
    docker.create_network(request).await?;
    Ok(())
}
