//! Measures how fast the queue takes messages when many sessions queue at once (group
//! commit). `cargo run --release -p postroom-queue --example enqueue_rate -- [SESSIONS] [N]`
//! prints messages per second; the spool and mail.redb go to a temp dir.

use std::sync::Arc;
use std::time::Instant;

use postroom_queue::transport::{DeliveryFuture, FaxSpoolTransport};
use postroom_queue::{
    DeliveryJob, Destination, Envelope, Outcome, OutcomeKind, Queue, QueueSettings, Recipient,
    Transport, Transports,
};

/// Never called: no runner is started.
struct Nowhere;

impl Transport for Nowhere {
    fn deliver<'a>(&'a self, job: &'a DeliveryJob) -> DeliveryFuture<'a> {
        let n = job.recipients.len();
        Box::pin(async move { vec![Outcome::local(OutcomeKind::Deferred, "4.0.0", "no"); n] })
    }

    fn destination_key(&self, _recipient: &Recipient) -> String {
        String::new()
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let sessions: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let total: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).expect("mail.redb"));
    let nowhere: Arc<dyn Transport> = Arc::new(Nowhere);
    let transports = Transports {
        local: nowhere.clone(),
        remote: nowhere,
        fax: Arc::new(FaxSpoolTransport::new(dir.path().join("fax"))),
    };
    let settings = QueueSettings::from_config(
        dir.path().to_owned(),
        "bench.example".into(),
        &postroom_config::mail::Queue::default(),
    );
    let queue = Queue::open(
        db,
        settings,
        transports,
        Arc::new(|a: &str| Destination::Remote {
            address: a.to_owned(),
        }),
    )
    .expect("queue");
    let body = bytes::Bytes::from(vec![b'x'; 4096]);

    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let queue: Queue = queue.clone();
        let body = body.clone();
        let per = total / sessions + usize::from(s < total % sessions);
        tasks.push(tokio::spawn(async move {
            for n in 0..per {
                let rcpt = format!("r{s}.{n}@x.example");
                let env = Envelope::new(
                    "a@bench.example",
                    vec![Recipient::new(
                        rcpt.clone(),
                        Destination::Remote { address: rcpt },
                    )],
                );
                queue.enqueue(env, body.clone()).await.expect("enqueue");
            }
        }));
    }
    for t in tasks {
        t.await.expect("session");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{total} messages of 4 KiB from {sessions} sessions in {secs:.2} s: {:.0} messages/s",
        total as f64 / secs
    );
}
