//! The spool on a thread of its own, so no file operation ever runs on the agent's runtime.
//!
//! The agent's one async thread times the CAN requests; an fsync on an SD card takes tens of
//! milliseconds (hundreds under load), and so would anything that waited for the spool's lock
//! while another caller held it through one. So the [`Spool`] lives on a dedicated thread
//! that takes [`Job`]s from a bounded channel in order, and the async side only sends jobs
//! and awaits replies ([`SpoolHandle`]). The counters the status message and endpoint show
//! are published after every job on a watch channel, so reading them never touches the
//! spool. Jobs run in the order sent, so an `ack` is applied before a later `take`.
//!
//! The thread ends, and syncs the spool one last time, when every handle is gone.

use tokio::sync::{mpsc, oneshot, watch};

use super::{Class, Record, RecordId, Spool, SpoolError, SpoolStats};

/// Jobs queued before a sender waits: the writer and the session rarely have more than a few
/// outstanding.
const QUEUE: usize = 64;

enum Job {
    Append {
        class: Class,
        topic: String,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<RecordId, SpoolError>>,
    },
    Take {
        max: usize,
        reply: oneshot::Sender<Result<Vec<Record>, SpoolError>>,
    },
    Ack(RecordId),
    Requeue,
    Sync(oneshot::Sender<Result<(), SpoolError>>),
}

/// The async side's way to the spool. Clones share the one thread.
#[derive(Debug, Clone)]
pub struct SpoolHandle {
    jobs: mpsc::Sender<Job>,
    stats: watch::Receiver<SpoolStats>,
}

/// Why a job got no answer: the spool thread is gone (it ended or panicked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the spool thread has stopped")]
pub struct SpoolGone;

/// A job's failure: the spool's own error, or no spool thread.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Gone(#[from] SpoolGone),
}

impl SpoolHandle {
    /// Moves `spool` onto a thread of its own.
    pub fn spawn(spool: Spool) -> std::io::Result<SpoolHandle> {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let (stats_tx, stats) = watch::channel(spool.stats());
        std::thread::Builder::new()
            .name("spool".into())
            .spawn(move || serve(spool, rx, &stats_tx))?;
        Ok(SpoolHandle { jobs, stats })
    }

    /// Stores a message (durable per the fsync policy when this returns).
    pub async fn append(
        &self,
        class: Class,
        topic: String,
        payload: Vec<u8>,
    ) -> Result<RecordId, HandleError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Append {
            class,
            topic,
            payload,
            reply,
        })
        .await?;
        Ok(answer.await.map_err(|_| SpoolGone)??)
    }

    /// Up to `max` records to publish (highest class first, then oldest), marked in flight.
    pub async fn take(&self, max: usize) -> Result<Vec<Record>, HandleError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Take { max, reply }).await?;
        Ok(answer.await.map_err(|_| SpoolGone)??)
    }

    /// The broker has record `id`: remove it (errors are logged by the spool thread).
    pub async fn ack(&self, id: RecordId) -> Result<(), SpoolGone> {
        self.send(Job::Ack(id)).await
    }

    /// The connection dropped: everything in flight is unsent again.
    pub async fn requeue_in_flight(&self) -> Result<(), SpoolGone> {
        self.send(Job::Requeue).await
    }

    /// Forces what was appended to disk.
    pub async fn sync(&self) -> Result<(), HandleError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Sync(reply)).await?;
        Ok(answer.await.map_err(|_| SpoolGone)??)
    }

    /// The counters as of the last job.
    pub fn stats(&self) -> SpoolStats {
        self.stats.borrow().clone()
    }

    /// The counters, to watch.
    pub fn watch_stats(&self) -> watch::Receiver<SpoolStats> {
        self.stats.clone()
    }

    async fn send(&self, job: Job) -> Result<(), SpoolGone> {
        self.jobs.send(job).await.map_err(|_| SpoolGone)
    }
}

/// The spool thread: jobs in order until every handle is gone, then a last sync. The counters
/// are published before a job's reply, so a caller that awaited a job sees its effect.
fn serve(mut spool: Spool, mut jobs: mpsc::Receiver<Job>, stats: &watch::Sender<SpoolStats>) {
    let publish = |spool: &Spool| {
        stats.send_if_modified(|s| {
            let now = spool.stats();
            let changed = *s != now;
            *s = now;
            changed
        });
    };
    while let Some(job) = jobs.blocking_recv() {
        match job {
            Job::Append {
                class,
                topic,
                payload,
                reply,
            } => {
                let result = spool.append(class, &topic, &payload);
                publish(&spool);
                let _ = reply.send(result);
            }
            Job::Take { max, reply } => {
                let result = take(&mut spool, max);
                publish(&spool);
                let _ = reply.send(result);
            }
            Job::Ack(id) => {
                if let Err(e) = spool.ack(id) {
                    tracing::error!(cause = %e, record = id.0, "spool ack failed");
                }
                publish(&spool);
            }
            Job::Requeue => {
                spool.requeue_in_flight();
                publish(&spool);
            }
            Job::Sync(reply) => {
                let result = spool.sync();
                publish(&spool);
                let _ = reply.send(result);
            }
        }
    }
    match spool.sync() {
        Ok(()) => tracing::debug!("spool synced as its thread ends"),
        Err(e) => tracing::error!(cause = %e, "spool sync at the end failed"),
    }
}

/// Up to `max` records, marked in flight. A read error after some records were taken ends
/// the batch without failing it: those are in flight already.
fn take(spool: &mut Spool, max: usize) -> Result<Vec<Record>, SpoolError> {
    let mut taken = Vec::new();
    while taken.len() < max {
        match spool.next_to_send() {
            Ok(Some(record)) => taken.push(record),
            Ok(None) => break,
            Err(_) if !taken.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{FsyncPolicy, SpoolConfig};

    #[tokio::test]
    async fn jobs_run_in_order_and_the_counters_follow() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(SpoolConfig {
            dir: dir.path().to_owned(),
            max_bytes: 1 << 20,
            fsync: FsyncPolicy::Always,
        })
        .expect("spool");
        let handle = SpoolHandle::spawn(spool).expect("thread");
        for i in 0..3u8 {
            handle
                .append(Class::Telemetry, format!("t/{i}"), vec![i; 10])
                .await
                .expect("append");
        }
        handle
            .append(Class::Dtc, "t/dtc".into(), vec![9])
            .await
            .expect("append");
        assert_eq!(handle.stats().messages, 4);
        // DTC reports first, then the oldest telemetry.
        let taken = handle.take(2).await.expect("take");
        let topics: Vec<&str> = taken.iter().map(|r| r.topic.as_str()).collect();
        assert_eq!(topics, ["t/dtc", "t/0"]);
        assert_eq!(handle.stats().in_flight, 2);
        handle.ack(taken[0].id).await.expect("ack");
        handle.requeue_in_flight().await.expect("requeue");
        // The ack was applied before the take that follows it.
        let again = handle.take(10).await.expect("take");
        let topics: Vec<&str> = again.iter().map(|r| r.topic.as_str()).collect();
        assert_eq!(topics, ["t/0", "t/1", "t/2"]);
        handle.sync().await.expect("sync");
        assert_eq!(handle.stats().messages, 3);
    }
}
