//! tokio-util's line codec (a tokio-io crate, no tokio runtime) framing
//! messages over a matou TCP connection through `TokioCompat`.
#![cfg(feature = "tokio-io")]

use futures_util::{SinkExt, StreamExt};
use matou::unix::net::{TcpListener, TcpStream};
use matou_hyper::TokioCompat;
use tokio_util::codec::{Framed, LinesCodec};

#[test]
fn tokio_util_lines_codec_over_a_matou_tcp_stream() {
    matou::builder().extra_workers(0).run(async {
        let listener = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = matou::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut lines = Framed::new(TokioCompat::new(stream), LinesCodec::new());
            let mut seen = 0;
            while let Some(line) = lines.next().await {
                lines.send(line.unwrap().to_uppercase()).await.unwrap();
                seen += 1;
            }
            seen
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut lines = Framed::new(TokioCompat::new(stream), LinesCodec::new());
        for word in ["matou", "tokio", "codec"] {
            lines.send(word).await.unwrap();
            assert_eq!(lines.next().await.unwrap().unwrap(), word.to_uppercase());
        }
        // Closing our side (shutdown of the write half) ends the peer's stream.
        SinkExt::<&str>::close(&mut lines).await.unwrap();
        assert_eq!(echo.await.unwrap(), 3);
    });
}
