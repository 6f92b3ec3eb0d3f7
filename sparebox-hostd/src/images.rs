//! Watching the agents' images for newer versions.
//!
//! Every [`DaemonConfig::image_check_interval`](crate::DaemonConfig::image_check_interval)
//! a task asks the runtime to pull each image reference the managed containers were created
//! from ([`Runtime::refresh_image`]), then looks at which image the reference names now
//! ([`Runtime::image_info`]). An agent whose container runs a different image than its
//! reference now names has an update available; its status report says so, with the
//! OpenClaw version it runs. The daemon never swaps an image on its own: upgrades are the
//! platform's decision.
//!
//! A pull that fails (no registry reachable, an image that only exists locally) is logged
//! and the local image is compared anyway, so a newer image built or loaded on the host is
//! noticed too.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sparebox_runtime::{ContainerInfo, Runtime};
use tracing::{debug, info, warn};

/// The image each reference in use named at the last check. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct ImageWatch {
    latest: Arc<Mutex<HashMap<String, String>>>,
}

/// What one check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageCheck {
    /// Image references checked.
    pub checked: usize,
    /// References whose pull failed (their local image was still compared).
    pub unreachable: usize,
    /// Agents whose reference now names a different image than their container runs.
    pub outdated: usize,
}

impl ImageWatch {
    /// A watch that has not checked anything yet: no update is reported until a check.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pulls every image reference the runtime's containers use and records which image
    /// each one names now.
    pub async fn check(&self, runtime: &dyn Runtime) -> ImageCheck {
        let containers = match runtime.list().await {
            Ok(containers) => containers,
            Err(err) => {
                warn!(error = %err, "image check skipped: cannot list the agents' containers");
                return ImageCheck::default();
            }
        };
        let references: BTreeSet<&str> = containers
            .iter()
            .filter(|c| c.image_id.is_some() && !c.image.is_empty())
            .map(|c| c.image.as_str())
            .collect();
        let mut summary = ImageCheck::default();
        for reference in references {
            summary.checked += 1;
            if let Err(err) = runtime.refresh_image(reference).await {
                summary.unreachable += 1;
                info!(image = reference, error = %err, "cannot ask the registry for a newer image; comparing the local one");
            }
            match runtime.image_info(reference).await {
                Ok(Some(image)) => {
                    self.lock().insert(reference.to_owned(), image.id);
                }
                Ok(None) => {
                    self.lock().remove(reference);
                }
                Err(err) => warn!(image = reference, error = %err, "cannot inspect image"),
            }
        }
        summary.outdated = containers
            .iter()
            .filter(|c| self.update_available(c))
            .count();
        if summary.outdated > 0 {
            info!(
                agents = summary.outdated,
                "newer images are available for some agents"
            );
        }
        summary
    }

    /// Whether `container`'s image reference named a different image than the container
    /// runs at the last check.
    pub fn update_available(&self, container: &ContainerInfo) -> bool {
        let Some(running) = container.image_id.as_deref() else {
            return false;
        };
        self.lock()
            .get(&container.image)
            .is_some_and(|latest| latest != running)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Checks the images every `interval`, the first time one interval after the start (the
/// daemon's first reports should not wait for pulls). Runs until aborted; a zero interval
/// returns at once.
pub(crate) async fn follow(runtime: Arc<dyn Runtime>, watch: ImageWatch, interval: Duration) {
    if interval.is_zero() {
        debug!("image checks turned off");
        return;
    }
    loop {
        tokio::time::sleep(interval).await;
        let summary = watch.check(runtime.as_ref()).await;
        debug!(?summary, "image check done");
    }
}

#[cfg(test)]
mod tests {
    use sparebox_core::AgentId;
    use sparebox_runtime::fake::FakeRuntime;
    use sparebox_runtime::ImageInfo;

    use super::*;

    fn running(agent: AgentId, image: &str, image_id: &str) -> ContainerInfo {
        let mut info = FakeRuntime::running_container(agent, "c1".to_owned(), image);
        info.image_id = Some(image_id.to_owned());
        info
    }

    #[tokio::test]
    async fn an_agent_is_outdated_once_its_reference_names_another_image() {
        let runtime = FakeRuntime::new();
        let agent = AgentId::new_random();
        runtime.insert_container(running(agent, "openclaw:stable", "sha256:old"));
        runtime.set_image(
            "openclaw:stable",
            ImageInfo {
                id: "sha256:old".to_owned(),
                openclaw_version: None,
            },
        );
        let watch = ImageWatch::new();
        let container = runtime.container(agent).unwrap();
        assert!(!watch.update_available(&container), "nothing checked yet");

        let first = watch.check(&runtime).await;
        assert_eq!((first.checked, first.outdated), (1, 0));
        assert!(!watch.update_available(&container));

        runtime.set_image(
            "openclaw:stable",
            ImageInfo {
                id: "sha256:new".to_owned(),
                openclaw_version: Some("2026.10.1".to_owned()),
            },
        );
        let second = watch.check(&runtime).await;
        assert_eq!((second.checked, second.outdated), (1, 1));
        assert!(watch.update_available(&container));
    }

    #[tokio::test]
    async fn status_reports_carry_the_image_its_version_and_the_update_flag() {
        let runtime = FakeRuntime::new();
        let agent = AgentId::new_random();
        let mut info = running(agent, "openclaw:stable", "sha256:old");
        info.openclaw_version = Some("2026.9.6".to_owned());
        runtime.insert_container(info);
        let dir = tempfile::tempdir().unwrap();
        let state = crate::state::SharedState::new(
            crate::journal::Journal::default(),
            dir.path().join("journal.json"),
        );
        state.put_agent(crate::journal::AgentRecord {
            agent_id: agent,
            gateway_port: 19001,
            tier: sparebox_core::Tier::Standard,
            stopped: false,
        });
        let watch = ImageWatch::new();
        runtime.set_image(
            "openclaw:stable",
            ImageInfo {
                id: "sha256:new".to_owned(),
                openclaw_version: Some("2026.10.1".to_owned()),
            },
        );

        let before = crate::report::agent_reports_with(&runtime, &state, &watch).await;
        assert_eq!(before[0].image.as_deref(), Some("openclaw:stable"));
        assert_eq!(before[0].image_id.as_deref(), Some("sha256:old"));
        assert_eq!(before[0].openclaw_version.as_deref(), Some("2026.9.6"));
        assert!(!before[0].image_update_available, "not checked yet");

        watch.check(&runtime).await;
        let after = crate::report::agent_reports_with(&runtime, &state, &watch).await;
        assert!(after[0].image_update_available);
        assert_eq!(
            after[0].openclaw_version.as_deref(),
            Some("2026.9.6"),
            "the version is the running container's, not the newer image's"
        );
    }

    #[tokio::test]
    async fn containers_without_an_image_id_are_never_outdated() {
        let runtime = FakeRuntime::new();
        let agent = AgentId::new_random();
        let mut info = running(agent, "/usr/bin/openclaw", "x");
        info.image_id = None;
        runtime.insert_container(info.clone());
        let watch = ImageWatch::new();
        let summary = watch.check(&runtime).await;
        assert_eq!(summary.checked, 0);
        assert!(!watch.update_available(&info));
    }
}
