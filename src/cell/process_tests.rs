use super::*;
use crate::config::values::{PublishSettings, ValueRule};

fn rules(settings: PublishSettings) -> ValuePlan {
    let mut plan = ValuePlan::new();
    plan.insert(TagId(0), ValueRule::new("die_temp", "press", &settings));
    plan.insert(TagId(1), ValueRule::new("recipe", "press", &settings));
    plan.insert(TagId(2), ValueRule::new("zone1", "oven", &settings));
    plan
}

fn sample(tag: u32, value: Option<Value>, quality: Quality, ts_ms: i64) -> Sample {
    Sample {
        tag: TagId(tag),
        value,
        quality,
        ts_ms,
        source_ts_ms: None,
    }
}

fn float(tag: u32, v: f64, ts_ms: i64) -> Sample {
    sample(tag, Some(Value::Float(v)), Quality::Good, ts_ms)
}

/// The values published for tag 0, in order, taking everything made so far.
fn published(pv: &mut ProcessValues, now: i64) -> Vec<(Option<f64>, Quality, i64)> {
    pv.take(now)
        .into_iter()
        .flat_map(|b| b.values)
        .filter(|r| r.tag == "die_temp")
        .map(|r| (r.value.map(|v| v.as_f64()), r.quality, r.ts))
        .collect()
}

#[test]
fn absolute_deadband_compares_with_the_last_published_value() {
    let mut pv = ProcessValues::new(rules(PublishSettings {
        deadband: Some(0.5),
        ..Default::default()
    }));
    let run = Running::default();
    for (i, v) in [100.0, 100.3, 100.5, 100.6, 100.2, 99.9, 101.0]
        .iter()
        .enumerate()
    {
        pv.observe(&float(0, *v, i as i64 * 100), &run);
    }
    // 100.3 and 100.5 are within 0.5 of 100; 100.6 is not; 100.2 is within of 100.6 (no); 99.9
    // is 0.7 below 100.6; 101.0 is 1.1 above 99.9.
    let got: Vec<f64> = published(&mut pv, 1_000)
        .iter()
        .map(|p| p.0.unwrap())
        .collect();
    assert_eq!(got, vec![100.0, 100.6, 99.9, 101.0]);
}

#[test]
fn percent_deadband_is_of_the_last_published_value() {
    let mut pv = ProcessValues::new(rules(PublishSettings {
        deadband_percent: Some(10.0),
        ..Default::default()
    }));
    let run = Running::default();
    for (i, v) in [200.0, 219.0, 221.0, 242.0, 244.0, 0.0, 0.0, 0.1]
        .iter()
        .enumerate()
    {
        pv.observe(&float(0, *v, i as i64), &run);
    }
    let got: Vec<f64> = published(&mut pv, 10)
        .iter()
        .map(|p| p.0.unwrap())
        .collect();
    // 10% of 200 is 20: 219 no, 221 yes; 10% of 221 is 22.1: 242 no, 244 yes; 0 yes; from 0
    // any change.
    assert_eq!(got, vec![200.0, 221.0, 244.0, 0.0, 0.1]);
}

#[test]
fn exceeds_treats_text_and_bools_as_any_change() {
    let d = Deadband::Absolute(5.0);
    assert!(!exceeds(d, Some(Value::Int(10)), Some(Value::UInt(15))));
    assert!(exceeds(d, Some(Value::Int(10)), Some(Value::UInt(16))));
    assert!(exceeds(
        d,
        Some(Value::Bool(false)),
        Some(Value::Bool(true))
    ));
    let t = |s| Some(Value::Text(mes_edge_drivers::Text::new(s).unwrap()));
    assert!(exceeds(d, t("A-1"), t("A-2")));
    assert!(!exceeds(d, t("A-1"), t("A-1")));
    assert!(exceeds(d, None, Some(Value::Float(1.0))));
    assert!(exceeds(
        d,
        Some(Value::Float(f64::NAN)),
        Some(Value::Float(1.0))
    ));
}

#[test]
fn heartbeat_republishes_the_latest_reading_after_max_interval() {
    let mut pv = ProcessValues::new(rules(PublishSettings {
        deadband: Some(1.0),
        max_interval_ms: Some(5_000),
        ..Default::default()
    }));
    let run = Running {
        order_id: Some("WO-1".into()),
        lot: Some("L-7".into()),
    };
    pv.observe(&float(0, 50.0, 1_000), &Running::default());
    pv.observe(&float(0, 50.4, 2_000), &Running::default());
    pv.due(5_999, &run);
    assert_eq!(
        published(&mut pv, 5_999).len(),
        1,
        "only the first reading so far"
    );
    pv.due(6_000, &run);
    let batch = pv.take(6_000);
    let beat = &batch[0].values[0];
    // The latest reading (within the deadband, so never published), stamped now, with the order
    // running now.
    assert_eq!(beat.value, Some(Value::Float(50.4)));
    assert_eq!(
        (beat.ts, beat.order_id.as_deref(), beat.lot.as_deref()),
        (6_000, Some("WO-1"), Some("L-7"))
    );
    // The next heartbeat is counted from this one; a change in between moves it on.
    pv.due(10_999, &run);
    assert!(pv.take(10_999).is_empty());
    pv.observe(&float(0, 60.0, 11_000), &run);
    pv.due(15_999, &run);
    assert_eq!(
        published(&mut pv, 15_999).len(),
        1,
        "the change, no heartbeat yet"
    );
    pv.due(16_000, &run);
    assert_eq!(
        published(&mut pv, 16_000),
        vec![(Some(60.0), Quality::Good, 16_000)]
    );
}

#[test]
fn min_interval_holds_changes_and_publishes_the_latest_at_its_end() {
    let mut pv = ProcessValues::new(rules(PublishSettings {
        min_interval_ms: Some(1_000),
        ..Default::default()
    }));
    let run = Running::default();
    pv.observe(&float(0, 1.0, 0), &run);
    pv.observe(&float(0, 2.0, 100), &run);
    pv.observe(&float(0, 3.0, 200), &run);
    pv.due(999, &run);
    assert_eq!(published(&mut pv, 999), vec![(Some(1.0), Quality::Good, 0)]);
    pv.due(1_000, &run);
    assert_eq!(
        published(&mut pv, 1_000),
        vec![(Some(3.0), Quality::Good, 200)]
    );
    // A change that goes back within the deadband of the published value is no longer news.
    pv.observe(&float(0, 4.0, 1_100), &run);
    pv.observe(&float(0, 3.0, 1_200), &run);
    pv.due(2_500, &run);
    assert!(published(&mut pv, 2_500).is_empty());
}

#[test]
fn bad_quality_is_published_once_per_change_and_a_never_read_tag_publishes_nothing() {
    let mut pv = ProcessValues::new(rules(PublishSettings::default()));
    let run = Running::default();
    // Never read: the device was offline from the start.
    pv.observe(&sample(0, None, Quality::Bad, 0), &run);
    assert!(pv.take(0).is_empty());
    pv.observe(&float(0, 7.0, 100), &run);
    pv.observe(&sample(0, None, Quality::Bad, 200), &run);
    pv.observe(&sample(0, None, Quality::Bad, 300), &run);
    pv.observe(
        &sample(0, Some(Value::Float(8.0)), Quality::Uncertain, 400),
        &run,
    );
    pv.observe(
        &sample(0, Some(Value::Float(8.0)), Quality::Uncertain, 500),
        &run,
    );
    pv.observe(&float(0, 8.0, 600), &run);
    assert_eq!(
        published(&mut pv, 700),
        vec![
            (Some(7.0), Quality::Good, 100),
            (None, Quality::Bad, 200),
            (Some(8.0), Quality::Uncertain, 400),
            (Some(8.0), Quality::Good, 600),
        ]
    );
}

#[test]
fn no_heartbeat_repeats_a_bad_value() {
    let mut pv = ProcessValues::new(rules(PublishSettings {
        max_interval_ms: Some(1_000),
        ..Default::default()
    }));
    let run = Running::default();
    pv.observe(&float(0, 7.0, 0), &run);
    pv.observe(&sample(0, None, Quality::Bad, 100), &run);
    pv.due(5_000, &run);
    assert_eq!(
        published(&mut pv, 5_000),
        vec![(Some(7.0), Quality::Good, 0), (None, Quality::Bad, 100)]
    );
    pv.observe(&float(0, 7.0, 6_000), &run);
    pv.due(7_000, &run);
    assert_eq!(
        published(&mut pv, 7_000),
        vec![
            (Some(7.0), Quality::Good, 6_000),
            (Some(7.0), Quality::Good, 7_000)
        ]
    );
}

#[test]
fn one_batch_per_device_carrying_every_change_with_its_order() {
    let mut pv = ProcessValues::new(rules(PublishSettings::default()));
    let run = Running {
        order_id: Some("WO-9".into()),
        lot: None,
    };
    pv.observe(&float(0, 1.0, 10), &run);
    pv.observe(
        &sample(
            1,
            Some(Value::Text(mes_edge_drivers::Text::new("R-12").unwrap())),
            Quality::Good,
            10,
        ),
        &run,
    );
    pv.observe(&float(2, 180.0, 12), &run);
    pv.observe(&float(0, 2.0, 20), &run);
    let batches = pv.take(30);
    let shape: Vec<(&str, Vec<&str>)> = batches
        .iter()
        .map(|b| {
            (
                b.device.as_str(),
                b.values.iter().map(|v| v.tag.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("oven", vec!["zone1"]),
            ("press", vec!["die_temp", "recipe", "die_temp"])
        ]
    );
    assert!(batches
        .iter()
        .flat_map(|b| &b.values)
        .all(|v| v.order_id.as_deref() == Some("WO-9")));
    let json: serde_json::Value =
        serde_json::from_slice(&batches[1].to_payload(5, "S", "e/s/a/l/c")).unwrap();
    assert_eq!(json["batch"], 5);
    assert_eq!(json["values"][1]["value"], "R-12");
    assert_eq!(json["values"][0]["quality"], "good");
    assert!(json["values"][0].get("lot").is_none());
}

#[test]
fn a_flood_of_one_device_is_split_at_the_batch_limit() {
    let mut plan = ValuePlan::new();
    for t in 0..5_000u32 {
        plan.insert(
            TagId(t),
            ValueRule::new(&format!("t{t}"), "press", &PublishSettings::default()),
        );
    }
    let mut pv = ProcessValues::new(plan);
    for t in 0..5_000u32 {
        pv.observe(&float(t, t as f64, 1), &Running::default());
    }
    let sizes: Vec<usize> = pv.take(2).iter().map(|b| b.values.len()).collect();
    assert_eq!(sizes, vec![2_000, 2_000, 1_000]);
}
