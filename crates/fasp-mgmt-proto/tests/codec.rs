//! `MgmtCodec` over real async I/O: frames from a reader that returns bytes in small pieces,
//! damage in the middle, control messages through the encoder.

use std::pin::Pin;
use std::task::{Context, Poll};

use fasp_mgmt_proto::{Control, DecodeErrorKind, Frame, MgmtCodec, RateChange};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::{FramedRead, FramedWrite};

/// Hands out its bytes `step` at a time.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self
            .step
            .min(self.data.len() - self.at)
            .min(buf.remaining());
        let at = self.at;
        buf.put_slice(&self.data[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn frames_survive_small_reads_and_damage() {
    let capture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/real-ascp/tags-two-sources.faspmgr"
    ))
    .unwrap();
    let mut data = capture.clone();
    data.extend_from_slice(b"\x00\xffgarbage\n");
    data.extend_from_slice(&capture);
    data.extend_from_slice(b"FASPMGR 2\nType: STATS\n"); // cut short at EOF
    for step in [1, 3, 64, 4096] {
        let mut stream = FramedRead::new(
            Trickle {
                data: data.clone(),
                at: 0,
                step,
            },
            MgmtCodec::new(),
        );
        let mut items = Vec::new();
        while let Some(item) = stream.next().await {
            items.push(item.expect("no I/O error"));
        }
        let kinds: Vec<String> = items
            .iter()
            .map(|i| match i {
                Ok(f) => f.type_name().unwrap().to_owned(),
                Err(e) => format!("{}@{}", e.kind, e.offset),
            })
            .collect();
        let n = capture.len();
        assert_eq!(
            kinds,
            [
                "INIT".to_owned(),
                "SESSION".into(),
                "ERROR".into(),
                format!("{}@{n}", DecodeErrorKind::MissingHeader),
                "INIT".into(),
                "SESSION".into(),
                "ERROR".into(),
                format!("{}@{}", DecodeErrorKind::TruncatedAtEof, 2 * n + 10),
            ],
            "step {step}"
        );
    }
}

#[tokio::test]
async fn encoder_writes_controls_and_frames() {
    let mut out = Vec::new();
    {
        let mut sink = FramedWrite::new(&mut out, MgmtCodec::new());
        sink.send(Control::Rate(RateChange::rates(1000, 10)))
            .await
            .unwrap();
        sink.send(Control::Cancel).await.unwrap();
        let f = Frame::builder("STATS")
            .unwrap()
            .field("SessionId", "x")
            .unwrap()
            .finish();
        sink.send(&f).await.unwrap();
        let bad = Control::Rate(RateChange::default());
        assert!(sink.send(bad).await.is_err());
    }
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "FASPMGR 2\nType: RATE\nRate: 1000\nMinRate: 10\n\nFASPMGR 2\nType: CANCEL\n\nFASPMGR 2\nType: STATS\nSessionId: x\n\n"
    );
}
