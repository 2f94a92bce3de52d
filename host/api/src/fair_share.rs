//! Each project's fair share of the server. A project may have any number of requests worked
//! on while it is alone; once another project has had a request in the server within the
//! last [`CONTENDED_FOR`], it may start only [`FairShare::limit`] of its own at a time, and its
//! others wait in arrival order. (A client sending one request after another is in the server
//! only now and then; without the window, the busy project would fill the server between.) Freed
//! places go round the waiting projects in turn. So one member sending many heavy requests
//! on many connections takes at most `limit` workers away from everyone else, however many
//! connections it opens, while a lone project (a benchmark, a bulk import) is never slowed.
//!
//! A request waits before its body is read; the connection limit (`connections`) bounds how
//! many can wait.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::oneshot;

use crate::AppState;
use crate::auth::context_from_headers;
use neutrino_core::RequestContext;

/// Requests of one project worked on at once while other projects have had requests in the
/// server lately: half the cores (at least one), so that another project's request finds a
/// core free.
pub fn default_limit() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// How long another project's request keeps a busy project to its share.
pub const CONTENDED_FOR: Duration = Duration::from_secs(5);

pub struct FairShare {
    limit: usize,
    shares: Mutex<Shares>,
}

#[derive(Default)]
struct Shares {
    projects: HashMap<String, Project>,
    /// Projects with waiting requests, in the order their turns come.
    turns: VecDeque<String>,
    active: usize,
    waiting: usize,
    /// The two projects seen last (a request starting or ending), the latest first.
    recent: [Option<(String, Instant)>; 2],
}

#[derive(Default)]
struct Project {
    active: usize,
    waiting: VecDeque<oneshot::Sender<()>>,
}

/// A request's place; given back when dropped.
pub struct Place {
    share: Arc<FairShare>,
    project: String,
}

impl FairShare {
    pub fn new(limit: usize) -> Arc<FairShare> {
        Arc::new(FairShare {
            limit: limit.max(1),
            shares: Mutex::new(Shares::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Shares> {
        self.shares.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a place for a request of `project`. Dropped while waiting (the client went
    /// away), it takes none: the leaving request that would have admitted it finds it gone.
    pub async fn enter(self: &Arc<Self>, project: &str) -> Place {
        let waiting = {
            let mut shares = self.lock();
            if shares.may_start(project, self.limit) {
                shares.start(project);
                None
            } else {
                let (tx, rx) = oneshot::channel();
                shares.wait(project, tx);
                Some(rx)
            }
        };
        if let Some(rx) = waiting {
            let mut admission = Admission {
                rx: Some(rx),
                share: self.clone(),
                project: project.to_string(),
            };
            if let Some(rx) = admission.rx.as_mut() {
                // The sender is dropped only after it was sent on (`admit_waiting`).
                let _ = rx.await;
            }
            admission.rx = None;
        }
        // Counted active, by this call or by the request that admitted it.
        Place {
            share: self.clone(),
            project: project.to_string(),
        }
    }

    fn leave(&self, project: &str) {
        let mut shares = self.lock();
        shares.finish(project);
        shares.admit_waiting(self.limit);
    }
}

impl neutrino_core::Contention for FairShare {
    /// Another project has had a request in the server lately (the window that holds a busy
    /// project to its share).
    fn others_busy(&self, project: &str) -> bool {
        let shares = self.lock();
        let active = shares.projects.get(project).map_or(0, |p| p.active);
        shares.active > active || shares.another_seen_lately(project)
    }
}

/// A request waiting for its place. Dropped before it has it (the client went away): no
/// place may be given to it any more, and one given just before is given back.
struct Admission {
    rx: Option<oneshot::Receiver<()>>,
    share: Arc<FairShare>,
    project: String,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.share.leave(&self.project);
            }
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.share.leave(&self.project);
    }
}

impl Shares {
    /// Whether a request of `project` may start now: the project is under its limit, or no
    /// other project has a request in the server.
    fn may_start(&self, project: &str, limit: usize) -> bool {
        let (active, waiting) = self
            .projects
            .get(project)
            .map_or((0, 0), |p| (p.active, p.waiting.len()));
        let others = (self.active - active) + (self.waiting - waiting);
        active < limit || (others == 0 && !self.another_seen_lately(project))
    }

    fn another_seen_lately(&self, project: &str) -> bool {
        self.recent
            .iter()
            .flatten()
            .find(|(p, _)| p != project)
            .is_some_and(|(_, at)| at.elapsed() < CONTENDED_FOR)
    }

    fn seen(&mut self, project: &str) {
        let now = Instant::now();
        match &mut self.recent[0] {
            Some((p, at)) if p == project => *at = now,
            _ => {
                self.recent[1] = self.recent[0].take();
                self.recent[0] = Some((project.to_string(), now));
            }
        }
    }

    fn start(&mut self, project: &str) {
        self.projects.entry(project.to_string()).or_default().active += 1;
        self.active += 1;
        self.seen(project);
    }

    fn wait(&mut self, project: &str, waiter: oneshot::Sender<()>) {
        let p = self.projects.entry(project.to_string()).or_default();
        if p.waiting.is_empty() {
            self.turns.push_back(project.to_string());
        }
        p.waiting.push_back(waiter);
        self.waiting += 1;
    }

    fn finish(&mut self, project: &str) {
        self.active -= 1;
        self.seen(project);
        if let Some(p) = self.projects.get_mut(project) {
            p.active -= 1;
            if p.active == 0 && p.waiting.is_empty() {
                self.projects.remove(project);
            }
        }
    }

    /// Starts waiting requests, one project's at a time in turn, while any may start. A
    /// waiter whose client has gone is dropped without a place.
    fn admit_waiting(&mut self, limit: usize) {
        let mut passed = 0;
        while passed < self.turns.len() {
            let project = self.turns.pop_front().expect("checked non-empty");
            if !self.may_start(&project, limit) {
                self.turns.push_back(project);
                passed += 1;
                continue;
            }
            let p = self.projects.get_mut(&project).expect("a waiting project");
            let waiter = p.waiting.pop_front().expect("a project in turns waits");
            let more = !p.waiting.is_empty();
            self.waiting -= 1;
            if more {
                self.turns.push_back(project.clone());
            }
            if waiter.send(()).is_ok() {
                self.start(&project);
            } else if !more && self.projects.get(&project).is_some_and(|p| p.active == 0) {
                self.projects.remove(&project);
            }
            passed = 0;
        }
    }
}

/// Middleware, inside authentication: an API request of a project waits for its place.
/// Agents' requests (`/internal`) and unauthenticated ones (`/healthz`, discovery) do not.
pub async fn admit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path.starts_with("/v2.0") || path.starts_with("/v2.1")) {
        return next.run(req).await;
    }
    let project = match req.extensions().get::<RequestContext>() {
        Some(ctx) => ctx.project_id.clone(),
        None => context_from_headers(req.headers(), &state.config.default_project).project_id,
    };
    let _place = state.fair_share.enter(&project).await;
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn pending(share: &Arc<FairShare>, project: &str) -> tokio::task::JoinHandle<Place> {
        let (share, project) = (share.clone(), project.to_string());
        let handle = tokio::spawn(async move { share.enter(&project).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        handle
    }

    #[tokio::test]
    async fn a_lone_project_is_never_held_back() {
        let share = FairShare::new(1);
        let places: Vec<Place> =
            futures_util::future::join_all((0..10).map(|_| share.enter("a"))).await;
        assert_eq!(share.lock().active, 10);
        drop(places);
        assert_eq!(share.lock().active, 0);
        assert!(share.lock().projects.is_empty());
    }

    #[tokio::test]
    async fn another_project_starts_at_once_and_the_busy_one_waits() {
        let share = FairShare::new(1);
        let a1 = share.enter("a").await;
        let a2 = share.enter("a").await; // alone: no limit
        let b1 = share.enter("b").await; // under its limit
        let a3 = pending(&share, "a").await;
        assert!(
            !a3.is_finished(),
            "a is over its limit while b is in the server"
        );
        let b2 = pending(&share, "b").await;
        assert!(!b2.is_finished());
        drop(a1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!a3.is_finished(), "a still has one active, at its limit");
        drop(b1);
        // b's waiter is under b's limit now; a is still at its own.
        let b2 = b2.await.unwrap();
        assert!(!a3.is_finished());
        drop(a2);
        let a3 = a3.await.unwrap();
        drop((a3, b2));
        let shares = share.lock();
        assert_eq!((shares.active, shares.waiting), (0, 0));
        assert!(shares.projects.is_empty() && shares.turns.is_empty());
    }

    #[tokio::test]
    async fn a_project_has_company_while_another_is_in_the_server_or_was_lately() {
        use neutrino_core::Contention as _;
        let share = FairShare::new(1);
        let a = share.enter("a").await;
        assert!(!share.others_busy("a"), "a alone");
        let b = share.enter("b").await;
        assert!(share.others_busy("a") && share.others_busy("b"));
        drop(b);
        assert!(share.others_busy("a"), "b was in the server a moment ago");
        share.lock().recent = [
            Some(("b".into(), Instant::now() - CONTENDED_FOR)),
            Some(("a".into(), Instant::now())),
        ];
        assert!(!share.others_busy("a"), "b left long ago");
        drop(a);
    }

    #[tokio::test]
    async fn a_waiter_whose_client_left_takes_no_place() {
        let share = FairShare::new(1);
        let a1 = share.enter("a").await;
        let b1 = share.enter("b").await;
        let gone = pending(&share, "a").await;
        gone.abort();
        let _ = gone.await;
        let a2 = pending(&share, "a").await;
        drop(a1);
        let a2 = a2.await.unwrap();
        drop((a2, b1));
        let shares = share.lock();
        assert_eq!((shares.active, shares.waiting), (0, 0));
        assert!(shares.projects.is_empty());
    }
}
