//! The `tracing` feature: a recording tracing-subscriber layer sees one span
//! per task with its id, name, worker and parent, the task tree as the span
//! tree, the span entered on every poll, and events inside a task under it.
#![cfg(feature = "tracing")]

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// What the layer saw of one span.
#[derive(Clone, Debug, Default)]
struct Seen {
    name: &'static str,
    target: String,
    fields: HashMap<String, String>,
    /// The span's parent in the subscriber's tree.
    parent_span: Option<u64>,
    enters: usize,
    /// Threads it was entered on.
    threads: Vec<std::thread::ThreadId>,
    /// Messages of events recorded while it was the current span.
    events: Vec<String>,
}

/// Open spans by id, and closed ones (the registry reuses a closed span's
/// id, so they leave the map).
#[derive(Clone, Default)]
struct Recorder {
    spans: Arc<Mutex<HashMap<u64, Seen>>>,
    closed: Arc<Mutex<Vec<(u64, Seen)>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.to_string());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut seen = Seen {
            name: attrs.metadata().name(),
            target: attrs.metadata().target().into(),
            parent_span: ctx
                .span(id)
                .and_then(|s| s.parent())
                .map(|p| p.id().into_u64()),
            ..Seen::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        self.spans.lock().unwrap().insert(id.into_u64(), seen);
    }

    fn on_enter(&self, id: &Id, _ctx: Context<'_, S>) {
        let mut spans = self.spans.lock().unwrap();
        let seen = spans.get_mut(&id.into_u64()).unwrap();
        seen.enters += 1;
        seen.threads.push(std::thread::current().id());
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        if let Some(seen) = self.spans.lock().unwrap().remove(&id.into_u64()) {
            self.closed.lock().unwrap().push((id.into_u64(), seen));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        if let Some(span) = ctx.lookup_current() {
            let mut spans = self.spans.lock().unwrap();
            if let Some(seen) = spans.get_mut(&span.id().into_u64()) {
                seen.events
                    .push(fields.remove("message").unwrap_or_default());
            }
        }
    }
}

#[test]
fn every_task_has_a_span_with_id_name_worker_and_parent_entered_on_each_poll() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    // Worker threads see the global default only.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let ids = matou_core::Builder::new().extra_workers(1).run(async {
        let grandchild_id = Arc::new(Mutex::new(None));
        let g = grandchild_id.clone();
        let alpha = matou_core::spawn_named("alpha", async move {
            for _ in 0..3 {
                matou_core::yield_now().await;
            }
            tracing::info!("in alpha");
            let grandchild = matou_core::spawn(async { tracing::info!("in grandchild") });
            *g.lock().unwrap() = Some(grandchild.id().as_u64());
            grandchild.await.unwrap();
        });
        let beta = matou_core::call(|| async {
            tracing::info!("in beta");
            matou_core::current_worker().index()
        })
        .unwrap();
        let (alpha_id, beta_id) = (alpha.id().as_u64(), beta.id().as_u64());
        alpha.await.unwrap();
        assert_eq!(beta.await.unwrap(), 1);
        let grandchild = grandchild_id.lock().unwrap().unwrap();
        (alpha_id, beta_id, grandchild)
    });
    let (alpha_id, beta_id, grandchild_id) = ids;

    // Every task's record is gone after `run`, and with it its span.
    let open = recorder.spans.lock().unwrap().clone();
    assert!(open.values().all(|s| s.name != "task"), "{open:#?}");
    let closed = recorder.closed.lock().unwrap().clone();
    let tasks: Vec<(u64, &Seen)> = closed
        .iter()
        .filter(|(_, s)| s.name == "task")
        .map(|(id, s)| (*id, s))
        .collect();
    assert_eq!(tasks.len(), 4, "main, alpha, beta, grandchild: {tasks:#?}");
    for (_, s) in &tasks {
        assert_eq!(s.target, matou_core::TASK_SPAN_TARGET);
        assert!(s.fields.contains_key("spawned_at"), "{s:?}");
        // Entered only on its own worker's thread (tasks never migrate).
        assert!(s.threads.windows(2).all(|w| w[0] == w[1]), "{s:?}");
    }
    let by_task = |task: u64| {
        tasks
            .iter()
            .find(|(_, s)| s.fields.get("id") == Some(&task.to_string()))
            .copied()
            .unwrap_or_else(|| panic!("no span for task {task}: {tasks:#?}"))
    };

    let (main_span, main) = tasks
        .iter()
        .copied()
        .find(|(_, s)| !s.fields.contains_key("parent"))
        .expect("the main task's span has no parent task");
    let main_id: u64 = main.fields["id"].parse().unwrap();
    assert_eq!(main.fields["worker"], "0");
    assert_eq!(main.parent_span, None);
    assert!(!main.fields.contains_key("name"));

    let (alpha_span, alpha) = by_task(alpha_id);
    assert_eq!(alpha.fields["name"], "alpha");
    assert_eq!(alpha.fields["worker"], "0");
    assert_eq!(alpha.fields["parent"], main_id.to_string());
    assert_eq!(alpha.parent_span, Some(main_span));
    // First poll, three yields, then waiting for the grandchild at least once.
    assert!(alpha.enters >= 4, "alpha entered {} times", alpha.enters);
    assert_eq!(alpha.events, ["in alpha"]);

    let (_, beta) = by_task(beta_id);
    assert_eq!(beta.fields["worker"], "1");
    assert_eq!(beta.fields["parent"], main_id.to_string());
    assert_eq!(beta.parent_span, Some(main_span));
    assert_eq!(beta.events, ["in beta"]);
    assert_ne!(beta.threads[0], main.threads[0]);

    let (_, grandchild) = by_task(grandchild_id);
    assert_eq!(grandchild.fields["parent"], alpha_id.to_string());
    assert_eq!(grandchild.parent_span, Some(alpha_span));
    assert_eq!(grandchild.events, ["in grandchild"]);

    // Outside a task there is no task span.
    assert!(matou_core::current_task_span().is_none());
}
