//! Running commands concurrently across agents and in order for each agent.
//!
//! Each agent with queued commands has one worker task that takes its commands one at a
//! time. A worker ends when its queue is empty, deciding so under the same lock the
//! dispatcher uses to find it, so a command can never land in a queue nobody reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sparebox_core::AgentId;
use sparebox_protocol::Command;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::executor::Executor;
use crate::journal::InFlightCommand;
use crate::reconcile::Converge;

/// One piece of work on an agent.
#[derive(Debug)]
pub(crate) enum Job {
    /// A command the server delivered.
    Command(Command),
    /// A command a previous daemon started and did not finish.
    Resume(InFlightCommand),
    /// A step the reconciler decided on.
    Converge(AgentId, Converge),
}

impl Job {
    fn agent(&self) -> AgentId {
        match self {
            Job::Command(command) => command.agent_id,
            Job::Resume(command) => command.agent_id,
            Job::Converge(agent, _) => *agent,
        }
    }
}

type Workers = HashMap<AgentId, mpsc::UnboundedSender<Job>>;

/// Per-agent command queues over one [`Executor`].
#[derive(Debug)]
pub(crate) struct CommandQueue {
    executor: Arc<Executor>,
    workers: Arc<Mutex<Workers>>,
    tasks: Mutex<JoinSet<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl CommandQueue {
    pub fn new(executor: Arc<Executor>) -> Self {
        Self {
            executor,
            workers: Arc::new(Mutex::new(HashMap::new())),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// Queues `job` behind the agent's earlier ones.
    pub fn submit(&self, job: Job) {
        let agent = job.agent();
        let command = job;
        let mut workers = lock(&self.workers);
        let command = match workers.get(&agent) {
            Some(sender) => match sender.send(command) {
                Ok(()) => return,
                Err(mpsc::error::SendError(command)) => command,
            },
            None => command,
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        // The receiver is alive: it is moved into the worker below.
        let _ = sender.send(command);
        workers.insert(agent, sender);
        drop(workers);

        let worker = work(agent, receiver, self.executor.clone(), self.workers.clone());
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(worker);
    }

    /// Stops every worker; commands cut short are not acked and stay journalled as in
    /// flight, for the next start to finish.
    pub fn shutdown(&self) {
        lock(&self.tasks).abort_all();
    }
}

async fn work(
    agent: AgentId,
    mut receiver: mpsc::UnboundedReceiver<Job>,
    executor: Arc<Executor>,
    workers: Arc<Mutex<Workers>>,
) {
    loop {
        let next = match receiver.try_recv() {
            Ok(command) => command,
            Err(_) => {
                let mut workers = lock(&workers);
                match receiver.try_recv() {
                    Ok(command) => command,
                    Err(_) => {
                        workers.remove(&agent);
                        return;
                    }
                }
            }
        };
        match next {
            Job::Command(command) => executor.run_command(command).await,
            Job::Resume(command) => executor.resume(command).await,
            Job::Converge(agent, step) => executor.converge(agent, step).await,
        }
    }
}
