//! The AT engine and its tokio driver against the modem simulator over a real pty.

use std::time::Duration;

use postroom_modem::{DialOutcome, DialTarget, Modem, PortLock, ResultCode, open_port};
use postroom_modem_sim::{Answer, Behaviour, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(10);

fn phone() -> DialTarget {
    DialTarget::Phone {
        prefix: "ATDT".into(),
        number: "5551234".into(),
    }
}

fn fast(behaviour: Behaviour) -> Behaviour {
    Behaviour {
        dial_delay: Duration::from_millis(50),
        guard: Duration::from_millis(200),
        ..behaviour
    }
}

async fn dial_result(modem: &mut Modem<tokio_serial::SerialStream>) -> ResultCode {
    match modem.dial(&phone(), LIMIT, LIMIT).await.unwrap() {
        DialOutcome::Answered { code, .. } => code,
        DialOutcome::TimedOut => panic!("dial timed out"),
    }
}

#[tokio::test]
async fn connects_carries_data_and_hangs_up_by_escape() {
    let sim = Simulator::start(fast(Behaviour::default()), None).unwrap();
    let locks = tempfile::tempdir().unwrap();
    let _lock = PortLock::acquire(locks.path(), sim.path()).unwrap();
    let mut modem = Modem::new(open_port(sim.path(), 115_200).unwrap());
    modem
        .init(&["ATZ".into(), "ATE1V1".into()], LIMIT)
        .await
        .unwrap();
    assert_eq!(
        dial_result(&mut modem).await,
        ResultCode::Connect(Some(33600))
    );

    // The simulator's far end is a loopback while online.
    modem.get_mut().write_all(b"hello ppp").await.unwrap();
    let mut back = [0u8; 9];
    tokio::time::timeout(LIMIT, modem.get_mut().read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"hello ppp");

    modem
        .hangup_by_escape(Duration::from_millis(300), LIMIT)
        .await
        .unwrap();
    assert_eq!(sim.stats().hangups, 1);
    assert_eq!(sim.stats().connects, 1);
}

/// Case modem-split-result, over a pty: the simulator writes each result in two pieces.
#[tokio::test]
async fn modem_split_result_over_pty() {
    let sim = Simulator::start(
        fast(Behaviour {
            split: true,
            ..Behaviour::default()
        }),
        None,
    )
    .unwrap();
    let mut modem = Modem::new(open_port(sim.path(), 115_200).unwrap());
    modem.init(&["ATE0".into()], LIMIT).await.unwrap();
    assert_eq!(
        dial_result(&mut modem).await,
        ResultCode::Connect(Some(33600))
    );
}

/// Case modem-echo-on, over a pty: with E1 the dial line comes back first and is skipped.
#[tokio::test]
async fn modem_echo_on_over_pty() {
    let behaviour = fast(Behaviour {
        answer: Answer::Busy,
        ..Behaviour::default()
    });
    let sim = Simulator::start(behaviour, None).unwrap();
    let mut modem = Modem::new(open_port(sim.path(), 115_200).unwrap());
    modem.init(&["ATE1".into()], LIMIT).await.unwrap();
    assert!(modem.engine().echo());
    assert_eq!(dial_result(&mut modem).await, ResultCode::Busy);
}

/// Case modem-numeric-codes, over a pty.
#[tokio::test]
async fn modem_numeric_codes_over_pty() {
    let behaviour = fast(Behaviour {
        answer: Answer::NoCarrier,
        busy_first: 1,
        ..Behaviour::default()
    });
    let sim = Simulator::start(behaviour, None).unwrap();
    let mut modem = Modem::new(open_port(sim.path(), 115_200).unwrap());
    modem.init(&["ATE0V0".into()], LIMIT).await.unwrap();
    assert_eq!(dial_result(&mut modem).await, ResultCode::Busy);
    assert_eq!(dial_result(&mut modem).await, ResultCode::NoCarrier);
}

/// Case modem-no-dialtone-spellings, over a pty.
#[tokio::test]
async fn modem_no_dialtone_spellings_over_pty() {
    for spaced in [false, true] {
        let behaviour = fast(Behaviour {
            answer: Answer::NoDialtone,
            spaced_dial_tone: spaced,
            ..Behaviour::default()
        });
        let sim = Simulator::start(behaviour, None).unwrap();
        let mut modem = Modem::new(open_port(sim.path(), 115_200).unwrap());
        assert_eq!(dial_result(&mut modem).await, ResultCode::NoDialtone);
    }
}

#[tokio::test]
async fn cellular_dial_defines_the_context_first() {
    let sim = Simulator::start(fast(Behaviour::default()), None).unwrap();
    let mut modem = Modem::new(open_port(sim.path(), 115_200).unwrap());
    let target = DialTarget::Cellular {
        apn: "internet.example".into(),
    };
    let outcome = modem.dial(&target, LIMIT, LIMIT).await.unwrap();
    assert!(matches!(
        outcome,
        DialOutcome::Answered {
            code: ResultCode::Connect(_),
            ..
        }
    ));
    assert_eq!(sim.stats().dials, vec!["*99#".to_owned()]);
}

#[tokio::test]
async fn silent_dial_times_out_and_is_aborted() {
    let sim = Simulator::start(
        fast(Behaviour {
            answer: Answer::Silence,
            ..Behaviour::default()
        }),
        None,
    )
    .unwrap();
    let mut modem = Modem::new(open_port(sim.path(), 115_200).unwrap());
    let outcome = modem
        .dial(&phone(), LIMIT, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(outcome, DialOutcome::TimedOut);
    // The abort put the modem back in command state.
    modem.expect_ok("AT", LIMIT).await.unwrap();
}

#[tokio::test]
async fn error_to_dial_keeps_the_answer() {
    let sim = Simulator::start(
        fast(Behaviour {
            answer: Answer::Error,
            ..Behaviour::default()
        }),
        None,
    )
    .unwrap();
    let mut modem = Modem::new(open_port(sim.path(), 115_200).unwrap());
    let outcome = modem.dial(&phone(), LIMIT, LIMIT).await.unwrap();
    assert_eq!(
        outcome,
        DialOutcome::Answered {
            code: ResultCode::Error,
            answer: "ERROR".into()
        }
    );
}
