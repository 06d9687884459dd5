use super::*;
use crate::fault::FaultKind;

fn err_field(cfg: &SimConfig) -> &'static str {
    match cfg.validate() {
        Err(SimError::Config { field, .. }) => field,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn default_is_valid() {
    SimConfig::default().validate().unwrap();
}

#[test]
fn empty_toml_table_gives_defaults() {
    let cfg: SimConfig = toml::from_str("").unwrap();
    assert_eq!(cfg, SimConfig::default());
}

#[test]
fn embeds_under_simulate_and_rejects_unknown_fields() {
    #[derive(Deserialize)]
    struct Pipeline {
        simulate: SimConfig,
    }
    let p: Pipeline = toml::from_str(
        r#"
            [simulate]
            line = "press-9"
            machines = 2
            channel_count = 6
            ts_format = "epoch_ms"
            [simulate.faults]
            kinds = ["drift", "stuck"]
            [simulate.inspections]
            interval_ms = 30000
            "#,
    )
    .unwrap();
    assert_eq!(p.simulate.line, "press-9");
    assert_eq!(
        p.simulate.faults.kinds,
        vec![FaultKind::Drift, FaultKind::Stuck]
    );
    assert_eq!(p.simulate.ts_format, TsFormat::EpochMs);
    let names: Vec<_> = p
        .simulate
        .effective_channels()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        [
            "temp_c",
            "vib_rms",
            "pressure_bar",
            "current_a",
            "ch_004",
            "ch_005"
        ]
    );
    assert!(toml::from_str::<SimConfig>("machine = 3").is_err());
    assert!(toml::from_str::<SimConfig>("[faults]\nmean_gap = 3").is_err());
    assert!(toml::from_str::<SimConfig>("[faults]\nkinds = [\"melt\"]").is_err());
}

#[test]
fn channel_count_can_cut() {
    let cfg = SimConfig {
        channel_count: Some(2),
        ..SimConfig::default()
    };
    assert_eq!(cfg.effective_channels().len(), 2);
    cfg.validate().unwrap();
}

#[test]
fn validation_errors_name_the_field() {
    let d = SimConfig::default;
    let cases: Vec<(SimConfig, &str)> = vec![
        (
            SimConfig {
                line: " ".into(),
                ..d()
            },
            "line",
        ),
        (SimConfig { machines: 0, ..d() }, "machines"),
        (
            SimConfig {
                channel_count: Some(0),
                ..d()
            },
            "channel_count",
        ),
        (
            SimConfig {
                channels: vec![
                    ChannelSpec::new("a", 0.0, 1.0),
                    ChannelSpec::new("a", 0.0, 1.0),
                ],
                ..d()
            },
            "channels.name",
        ),
        (
            SimConfig {
                channels: vec![ChannelSpec::new("a", 0.0, 0.0)],
                ..d()
            },
            "channels.scale",
        ),
        (
            SimConfig {
                channels: vec![ChannelSpec::new("a", f64::NAN, 1.0)],
                ..d()
            },
            "channels.level",
        ),
        (
            SimConfig {
                interval_ms: 0,
                ..d()
            },
            "interval_ms",
        ),
        (
            SimConfig {
                jitter_ms: 1000,
                ..d()
            },
            "jitter_ms",
        ),
        (
            SimConfig {
                jitter_ms: -1,
                ..d()
            },
            "jitter_ms",
        ),
        (
            SimConfig {
                start_ms: -5,
                ..d()
            },
            "start_ms",
        ),
        (
            SimConfig {
                factor_loading: 1.0,
                ..d()
            },
            "factor_loading",
        ),
        (
            SimConfig {
                factor_ar: f64::NAN,
                ..d()
            },
            "factor_ar",
        ),
        (
            SimConfig {
                late_fraction: 1.0,
                ..d()
            },
            "late_fraction",
        ),
        (
            SimConfig {
                max_late_ms: 1000,
                ..d()
            },
            "max_late_ms",
        ),
        (
            SimConfig {
                warmup_ms: -1,
                ..d()
            },
            "warmup_ms",
        ),
        (
            SimConfig {
                decimals: 13,
                ..d()
            },
            "decimals",
        ),
        (
            SimConfig {
                faults: FaultConfig {
                    kinds: vec![],
                    ..FaultConfig::default()
                },
                ..d()
            },
            "faults.kinds",
        ),
        (
            SimConfig {
                faults: FaultConfig {
                    mean_gap_ms: 1,
                    ..FaultConfig::default()
                },
                ..d()
            },
            "faults.mean_gap_ms",
        ),
        (
            SimConfig {
                faults: FaultConfig {
                    min_duration_ms: 0,
                    ..FaultConfig::default()
                },
                ..d()
            },
            "faults.min_duration_ms",
        ),
        (
            SimConfig {
                faults: FaultConfig {
                    max_duration_ms: 1,
                    ..FaultConfig::default()
                },
                ..d()
            },
            "faults.max_duration_ms",
        ),
        (
            SimConfig {
                faults: FaultConfig {
                    severity_min: 0.9,
                    severity_max: 0.8,
                    ..FaultConfig::default()
                },
                ..d()
            },
            "faults.severity_max",
        ),
        (
            SimConfig {
                faults: FaultConfig {
                    severity_min: -0.1,
                    ..FaultConfig::default()
                },
                ..d()
            },
            "faults.severity_min",
        ),
        (
            SimConfig {
                faults: FaultConfig {
                    drift_sd: f64::INFINITY,
                    ..FaultConfig::default()
                },
                ..d()
            },
            "faults.drift_sd",
        ),
        (
            SimConfig {
                faults: FaultConfig {
                    variance_factor: 0.5,
                    ..FaultConfig::default()
                },
                ..d()
            },
            "faults.variance_factor",
        ),
        (
            SimConfig {
                faults: FaultConfig {
                    spike_max_len: 0,
                    ..FaultConfig::default()
                },
                ..d()
            },
            "faults.spike_max_len",
        ),
        (
            SimConfig {
                inspections: InspectionConfig {
                    interval_ms: 0,
                    ..InspectionConfig::default()
                },
                ..d()
            },
            "inspections.interval_ms",
        ),
        (
            SimConfig {
                inspections: InspectionConfig {
                    base_rate: 0.5,
                    max_rate: 0.4,
                    ..InspectionConfig::default()
                },
                ..d()
            },
            "inspections.max_rate",
        ),
    ];
    for (cfg, field) in cases {
        assert_eq!(err_field(&cfg), field, "{cfg:?}");
    }
}

#[test]
fn disabled_sections_skip_their_checks() {
    let cfg = SimConfig {
        late_fraction: 0.0,
        max_late_ms: 0,
        faults: FaultConfig {
            enabled: false,
            kinds: vec![],
            ..FaultConfig::default()
        },
        inspections: InspectionConfig {
            enabled: false,
            interval_ms: 0,
            ..InspectionConfig::default()
        },
        ..SimConfig::default()
    };
    cfg.validate().unwrap();
}
