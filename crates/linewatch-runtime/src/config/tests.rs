use std::path::Path;

use super::*;

const MINIMAL: &str = r#"
    [pipeline]
    name = "press-3"
    [window]
    channels = ["temp_c", "vib_rms"]
"#;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_fill_everything_not_given() {
    let cfg = PipelineConfig::from_toml_with_env(MINIMAL, "t", env(&[])).unwrap();
    assert_eq!(cfg.pipeline.name, "press-3");
    assert_eq!(cfg.group_id(), "linewatch-press-3");
    assert_eq!(cfg.window.size, Duration::from_secs(10));
    assert_eq!(cfg.slide(), Duration::from_secs(10));
    assert_eq!(cfg.alert.open_after, 3);
    assert_eq!(
        cfg.models_root(),
        PathBuf::from("./linewatch-out/models/press-3")
    );
}

#[test]
fn environment_overrides_file_and_reaches_client_properties() {
    let cfg = PipelineConfig::from_toml_with_env(
        MINIMAL,
        "t",
        env(&[
            ("LINEWATCH_BROKERS", "k1:9092,k2:9092"),
            ("LINEWATCH__ALERT__OPEN_AFTER", "5"),
            ("LINEWATCH__WINDOW__SIZE", "30s"),
            ("LINEWATCH__KAFKA__PROPERTIES__SASL_PASSWORD", "s3cret"),
            ("LINEWATCH__MODEL__HIDDEN", "[32, 16]"),
            ("OTHER", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.kafka.brokers, "k1:9092,k2:9092");
    assert_eq!(cfg.alert.open_after, 5);
    assert_eq!(cfg.window.size, Duration::from_secs(30));
    assert_eq!(cfg.kafka.properties.get("sasl.password").unwrap(), "s3cret");
    assert_eq!(cfg.model.hidden, Some(vec![32, 16]));
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let err = PipelineConfig::from_toml_with_env(
        &format!("{MINIMAL}\n[alert]\nopen_afterr = 3\n"),
        "t",
        env(&[]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("open_afterr"), "{err}");
}

#[test]
fn validation_names_the_key_and_why() {
    let cases = [
        ("[window]\nchannels = []\n", "window.channels"),
        (
            "[window]\nchannels = [\"a\"]\nsize = \"10s\"\nslide = \"3s\"\n",
            "window.slide",
        ),
        ("[window]\nchannels = [\"a\", \"a\"]\n", "window.channels"),
        (
            "[window]\nchannels = [\"a\"]\n[model]\npower = 4\n",
            "model.power",
        ),
        (
            "[window]\nchannels = [\"a\"]\n[model]\ndevice = \"tpu\"\n",
            "model.device",
        ),
        (
            "[window]\nchannels = [\"a\"]\n[kafka.properties]\n\"group.id\" = \"x\"\n",
            "kafka.properties",
        ),
        (
            "[window]\nchannels = [\"a\"]\n[http]\nlisten = \"nonsense\"\n",
            "http.listen",
        ),
        (
            "[pipeline]\nname = \"../x\"\n[window]\nchannels = [\"a\"]\n",
            "pipeline.name",
        ),
    ];
    for (text, key) in cases {
        let err = PipelineConfig::from_toml_with_env(text, "t", env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{text:?} -> {err}");
    }
}

/// The key of a validation error, or the whole error when it is of another kind.
fn invalid_key(text: &str) -> String {
    match PipelineConfig::from_toml_with_env(text, "t", env(&[])) {
        Err(ConfigError::Invalid { key, message }) => {
            assert!(!message.is_empty());
            key.to_string()
        }
        Err(e) => format!("not a validation error: {e}"),
        Ok(_) => "accepted".to_string(),
    }
}

#[test]
fn every_setting_that_would_do_nothing_or_worse_is_named() {
    let cases = [
        ("[isotonic]\nhidden = [0]", "isotonic.hidden"),
        ("[isotonic]\nhidden = [32, 0]", "isotonic.hidden"),
        ("[model]\nweight_decay = -1", "model.weight_decay"),
        ("[model]\nweight_decay = nan", "model.weight_decay"),
        ("[model]\nprojections = 0", "model.projections"),
        ("[decode]\nmax_channels = 0", "decode.max_channels"),
        (
            "[kafka]\nrekey = true\n[decode]\nformat = \"sparkplug_b\"",
            "kafka.rekey",
        ),
        (
            "[kafka]\nrekey = true\nrekey_topic = \"readings\"",
            "kafka.rekey_topic",
        ),
        ("[kafka]\nrekey_topic = \"a b\"", "kafka.rekey_topic"),
        (
            "[decode]\nformat = \"sparkplug_b\"\n[decode.sparkplug]\nmachine = \"metric\"",
            "decode.sparkplug",
        ),
        (
            "[decode]\nformat = \"avro_long\"\n[decode.registry]\nurl = \"registry:8081\"",
            "decode.registry.url",
        ),
        (
            "[decode.registry]\nurl = \"http://r:8081\"\ntimeout = \"0s\"",
            "decode.registry.timeout",
        ),
        (
            "[decode.registry]\nurl = \"http://\"",
            "decode.registry.url",
        ),
        ("[decode]\nmax_channels = 1", "decode.max_channels"),
        (
            "[decode]\nmax_message_bytes = 10",
            "decode.max_message_bytes",
        ),
        ("[model]\nhidden = [0]", "model.hidden"),
        ("[model]\nepochs = 0", "model.epochs"),
        ("[model]\nbatch_size = 0", "model.batch_size"),
        ("[model]\npatience = 0", "model.patience"),
        ("[model]\nlearning_rate = 0.0", "model.learning_rate"),
        ("[model]\nholdout_fraction = 0.9", "model.holdout_fraction"),
        (
            "[model]\nthreshold_quantile = 1.0",
            "model.threshold_quantile",
        ),
        ("[model]\ncalibration_folds = 1", "model.calibration_folds"),
        ("[model]\nquadrature_nodes = 1", "model.quadrature_nodes"),
        ("[model]\nstats = [\"mean\", \"mean\"]", "model.stats"),
        ("[model]\nstats = [\"count\"]", "model.stats"),
        ("[isotonic]\nlambda = -1.0", "isotonic.lambda"),
        ("[isotonic]\nmin_labels = 0", "isotonic.min_labels"),
        ("[isotonic]\nmin_positives = 0", "isotonic.min_positives"),
        (
            "[isotonic]\nmin_labels = 5\nmin_positives = 10",
            "isotonic.min_positives",
        ),
        ("[alert]\nopen_after = 0", "alert.open_after"),
        ("[alert]\nresolve_after = 0", "alert.resolve_after"),
        ("[alert]\ntop_features = 0", "alert.top_features"),
        ("[alert]\np_value = 0.9", "alert.p_value"),
        ("[retrain]\nevery = \"0s\"", "retrain.every"),
        ("[retrain]\nmin_windows = 5", "retrain.min_windows"),
        ("[retrain]\nmax_rows = 100", "retrain.max_rows"),
        ("[retrain]\nmax_regression = -0.5", "retrain.max_regression"),
        (
            "[retrain]\nvalidation_fraction = 0.0",
            "retrain.validation_fraction",
        ),
        ("[retrain]\nmodels_dir = \"\"", "retrain.models_dir"),
        ("[sink]\nmax_rows = 0", "sink.max_rows"),
        ("[sink]\nmax_bytes = 0", "sink.max_bytes"),
        ("[sink]\nmax_age = \"0s\"", "sink.max_age"),
        ("[sink]\nrow_group_rows = 0", "sink.row_group_rows"),
        ("[sink]\nzstd_level = 0", "sink.zstd_level"),
        ("[sink]\nout = \"\"", "sink.out"),
        ("[kafka]\nack_timeout = \"0s\"", "kafka.ack_timeout"),
        (
            "[decode.fields]\nvalues = \"values\"",
            "decode.fields.values",
        ),
        (
            "[decode.fields]\nline_constant = \"\"",
            "decode.fields.line_constant",
        ),
        ("[kafka]\ngroup_id = \"\"", "kafka.group_id"),
        ("[kafka]\nbrokers = \"k1:9092,\"", "kafka.brokers"),
        ("[kafka]\nalerts_topic = \"readings\"", "kafka.alerts_topic"),
        (
            "[kafka]\nreadings_topic = \"my topic\"",
            "kafka.readings_topic",
        ),
        ("[kafka]\ndlq_suffix = \"/dlq\"", "kafka.dlq_suffix"),
        ("[window]\nidle_timeout = \"0s\"", "window.idle_timeout"),
        ("[window]\nsize = \"0s\"", "window.size"),
        ("[window]\nsize = \"2000s\"\nslide = \"1s\"", "window.slide"),
        ("[simulate]\nmachines = 0", "simulate"),
    ];
    let channels = "channels = [\"temp_c\", \"vib_rms\"]";
    for (section, key) in cases {
        let text = if section.starts_with("[window]") {
            format!("{section}\n{channels}\n")
        } else {
            format!("[window]\n{channels}\n{section}\n")
        };
        assert_eq!(invalid_key(&text), key, "{section}");
    }
}

#[test]
fn shrinkage_is_auto_ledoit_wolf_or_a_fraction() {
    use linewatch_models::Shrinkage;
    let read = |v: &str| {
        PipelineConfig::from_toml_with_env(
            &format!("[window]\nchannels = [\"a\"]\n[model]\nshrinkage = {v}\n"),
            "t",
            env(&[]),
        )
        .map(|c| c.model.shrinkage)
    };
    assert_eq!(PipelineConfig::default().model.shrinkage, Shrinkage::Auto);
    assert_eq!(read("\"auto\"").unwrap(), Shrinkage::Auto);
    assert_eq!(read("\"ledoit_wolf\"").unwrap(), Shrinkage::LedoitWolf);
    assert_eq!(read("0.2").unwrap(), Shrinkage::Fixed(0.2));
    assert_eq!(read("0").unwrap(), Shrinkage::Fixed(0.0));
    for bad in ["1.5", "\"bogus\"", "true"] {
        let e = read(bad).unwrap_err().to_string();
        assert!(e.contains("model.shrinkage"), "{bad}: {e}");
    }
}

#[test]
fn a_covariate_must_name_a_feature_the_model_sees() {
    let with = |feature: &str, extra: &str| {
        format!(
            "{MINIMAL}\n{extra}\n[isotonic]\ncovariates = [{{ feature = \"{feature}\", \
             monotone = \"increasing\" }}]\n"
        )
    };
    let message = |text: &str| match PipelineConfig::from_toml_with_env(text, "t", env(&[])) {
        Err(ConfigError::Invalid { key, message }) => {
            assert_eq!(key, "isotonic.covariates", "{message}");
            message
        }
        other => panic!("{text}: {other:?}"),
    };
    // A channel that is not in window.channels: the feature does not exist.
    let m = message(&with("temp__mean", ""));
    assert!(m.contains("\"temp__mean\""), "{m}");
    assert!(m.contains("window.channels"), "{m}");
    // A statistic the model does not see (default stats: mean, std, slope).
    let m = message(&with("temp_c__last", ""));
    assert!(m.contains("\"temp_c__last\""), "{m}");
    assert!(m.contains("model.stats"), "{m}");
    // Not a feature name at all.
    let m = message(&with("temp_c", ""));
    assert!(m.contains("<channel>__<stat>"), "{m}");
    // With the statistic in model.stats, or a default one, it is accepted.
    let ok = with("temp_c__last", "[model]\nstats = [\"mean\", \"last\"]");
    PipelineConfig::from_toml_with_env(&ok, "t", env(&[])).unwrap();
    PipelineConfig::from_toml_with_env(&with("vib_rms__std", ""), "t", env(&[])).unwrap();
    // The backtest's placeholder list: channels come from the CSV, the stat still counts.
    let placeholder = |f: &str| {
        format!(
            "[window]\nchannels = [\"{CHANNELS_FROM_DATA}\"]\n[isotonic]\n\
             covariates = [{{ feature = \"{f}\" }}]\n"
        )
    };
    PipelineConfig::from_toml_with_env(&placeholder("x__mean"), "t", env(&[])).unwrap();
    assert_eq!(invalid_key(&placeholder("x__last")), "isotonic.covariates");
}

#[test]
fn shipped_pipelines_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            PipelineConfig::from_toml_with_env(&text, &path.display().to_string(), env(&[]))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 2, "demo.toml and a realistic line at least");
}

/// Every pipeline file shipped in `pipelines/` loads and passes validation (they are the
/// examples users copy).
#[test]
fn every_shipped_pipeline_file_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.display().to_string();
            PipelineConfig::from_toml_with_env(&text, &name, env(&[]))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            n += 1;
        }
    }
    assert!(n >= 3, "{n} pipeline files");
    let long = std::fs::read_to_string(dir.join("long-format.toml")).unwrap();
    let cfg = PipelineConfig::from_toml_with_env(&long, "long", env(&[])).unwrap();
    assert_eq!(cfg.decode.format, linewatch_window::Format::JsonLong);
    assert_eq!(
        cfg.decode.fields.ts_format,
        linewatch_window::TsFormat::EpochS
    );
    let spb = std::fs::read_to_string(dir.join("sparkplug.toml")).unwrap();
    let cfg = PipelineConfig::from_toml_with_env(&spb, "sparkplug", env(&[])).unwrap();
    assert_eq!(cfg.decode.format, linewatch_window::Format::SparkplugB);
    assert_eq!(
        cfg.decode.sparkplug.machine,
        linewatch_window::SparkplugMachine::Device
    );
    let avro = std::fs::read_to_string(dir.join("avro-long.toml")).unwrap();
    let cfg = PipelineConfig::from_toml_with_env(&avro, "avro", env(&[])).unwrap();
    assert_eq!(cfg.decode.format, linewatch_window::Format::AvroLong);
    assert_eq!(
        cfg.decode.registry.url.as_deref(),
        Some("http://schema-registry:8081")
    );
}

#[test]
fn the_rekeyed_topic_is_named_after_the_group_and_windowed_only_when_on() {
    let channels = "[window]\nchannels = [\"a\"]\n";
    let off = PipelineConfig::from_toml_with_env(channels, "t", env(&[])).unwrap();
    assert_eq!(off.windowed_topic(), "readings");
    let on = PipelineConfig::from_toml_with_env(
        &format!("{channels}[pipeline]\nname = \"press\"\n[kafka]\nrekey = true"),
        "t",
        env(&[]),
    )
    .unwrap();
    assert_eq!(on.rekey_topic(), "linewatch-press-readings-repartition");
    assert_eq!(on.windowed_topic(), "linewatch-press-readings-repartition");
    let named = PipelineConfig::from_toml_with_env(
        &format!("{channels}[kafka]\nrekey = true\nrekey_topic = \"by-machine\""),
        "t",
        env(&[]),
    )
    .unwrap();
    assert_eq!(named.windowed_topic(), "by-machine");
}
