//! GEOADD, GEOPOS, GEODIST and GEOHASH against the real server, with the
//! `redis` crate as the peer: Redis 7.0's figures for its documentation's
//! example (Palermo and Catania), its errors, and positions that survive a
//! restart (GEOADD is logged as the ZADD it is).

mod common;

use common::{q, q_err, temp_dir, Server};

#[test]
fn geo_commands_give_redis_figures_and_positions_survive_a_restart() {
    let dir = temp_dir("geo");
    let mut server = Server::start(&dir, &["--fsync", "always"]);
    let mut c = server.client();
    let n: i64 = q(
        &mut c,
        &[
            "GEOADD",
            "Sicily",
            "13.361389",
            "38.115556",
            "Palermo",
            "15.087269",
            "37.502669",
            "Catania",
        ],
    );
    assert_eq!(n, 2);
    let score: String = q(&mut c, &["ZSCORE", "Sicily", "Palermo"]);
    assert_eq!(score, "3479099956230698");
    let d: String = q(&mut c, &["GEODIST", "Sicily", "Palermo", "Catania"]);
    assert_eq!(d, "166274.1516");
    let d: String = q(&mut c, &["GEODIST", "Sicily", "Palermo", "Catania", "km"]);
    assert_eq!(d, "166.2742");
    let d: Option<String> = q(&mut c, &["GEODIST", "Sicily", "Palermo", "Nowhere"]);
    assert_eq!(d, None);
    let h: Vec<Option<String>> = q(&mut c, &["GEOHASH", "Sicily", "Palermo", "Nowhere"]);
    assert_eq!(h, [Some("sqc8b49rny0".to_string()), None]);
    // NX and CH go to the ZADD it is.
    let n: i64 = q(
        &mut c,
        &["GEOADD", "Sicily", "CH", "13.5", "38.1", "Palermo"],
    );
    assert_eq!(n, 1);
    let n: i64 = q(&mut c, &["GEOADD", "Sicily", "NX", "1", "1", "Palermo"]);
    assert_eq!(n, 0);
    assert!(q_err(&mut c, &["GEOADD", "Sicily", "200", "10", "x"])
        .contains("invalid longitude,latitude pair 200.000000,10.000000"));
    assert!(q_err(&mut c, &["GEOADD", "Sicily", "a", "10", "x"]).contains("not a valid float"));
    assert!(
        q_err(&mut c, &["GEOADD", "Sicily", "NX", "XX", "1", "1", "x"]).contains("syntax error")
    );
    assert!(q_err(&mut c, &["GEODIST", "Sicily", "a", "b", "parsec"]).contains("unsupported unit"));
    let _: () = q(&mut c, &["SET", "s", "v"]);
    assert!(q_err(&mut c, &["GEOADD", "s", "1", "1", "x"]).starts_with("WRONGTYPE"));
    server.kill();
    server.spawn();
    let mut c = server.client();
    let pos: Vec<Option<Vec<String>>> = q(&mut c, &["GEOPOS", "Sicily", "Catania", "Nowhere"]);
    assert_eq!(
        pos,
        [
            Some(vec![
                "15.08726745843887329".to_string(),
                "37.50266842333162032".to_string()
            ]),
            None
        ]
    );
    let t: String = q(&mut c, &["TYPE", "Sicily"]);
    assert_eq!(t, "zset");
}
