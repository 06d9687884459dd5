//! How the simulator writes its readings, in each readings format a pipeline can read: the
//! message key and bytes of each Kafka record.

use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use linewatch_sim::SimReading;
use linewatch_window::Format;

/// The edge node id of the simulator's Sparkplug B messages
/// (`spBv1.0/<line>/DDATA/linewatch-sim/<machine>`).
pub const SPARKPLUG_EDGE_NODE: &str = "linewatch-sim";

/// The simulator's Avro schema for `avro`: a wide reading with the default field names.
pub const AVRO_WIDE_SCHEMA: &str = r#"{"type":"record","name":"Reading","namespace":"linewatch","fields":[
  {"name":"line","type":"string"},
  {"name":"machine","type":"string"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"values","type":{"type":"map","values":"double"}}]}"#;

/// The simulator's Avro schema for `avro_long`: one channel value per record, with the
/// default long field names.
pub const AVRO_LONG_SCHEMA: &str = r#"{"type":"record","name":"Value","namespace":"linewatch","fields":[
  {"name":"line","type":"string"},
  {"name":"machine","type":"string"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"tag","type":"string"},
  {"name":"value","type":"double"}]}"#;

/// The Avro schema the simulator writes `format` with (`None` for the other formats).
pub fn avro_schema(format: Format) -> Option<&'static str> {
    match format {
        Format::Avro => Some(AVRO_WIDE_SCHEMA),
        Format::AvroLong => Some(AVRO_LONG_SCHEMA),
        Format::Json | Format::JsonLong | Format::SparkplugB => None,
    }
}

/// Writes simulated readings as one format's Kafka records.
#[derive(Debug)]
pub enum ReadingEncoder {
    /// The contract: one JSON object per reading, keyed by machine.
    Json,
    /// One JSON object per channel value (the default long mapping), keyed by machine.
    JsonLong,
    /// One Sparkplug B DDATA message per reading from [`SPARKPLUG_EDGE_NODE`], keyed by its
    /// MQTT topic as a bridge writes it; `seq` counts the node's messages.
    SparkplugB {
        /// Messages written so far.
        seq: u64,
    },
    /// Avro records in the Confluent wire format under schema `id`, keyed by machine.
    Avro {
        /// `avro_long`: one record per channel value.
        long: bool,
        /// The registered schema's id.
        id: u32,
        /// The schema written with.
        schema: Arc<Schema>,
    },
}

impl ReadingEncoder {
    /// The encoder of `format`; the Avro formats need `avro_id`, the id under which
    /// [`avro_schema`] is registered.
    ///
    /// # Errors
    /// An Avro format without an id.
    pub fn new(format: Format, avro_id: Option<u32>) -> anyhow::Result<Self> {
        Ok(match format {
            Format::Json => Self::Json,
            Format::JsonLong => Self::JsonLong,
            Format::SparkplugB => Self::SparkplugB { seq: 0 },
            Format::Avro | Format::AvroLong => {
                let id = avro_id.ok_or_else(|| anyhow::anyhow!("no Avro schema id"))?;
                let text = avro_schema(format).unwrap_or(AVRO_WIDE_SCHEMA);
                Self::Avro {
                    long: format == Format::AvroLong,
                    id,
                    schema: Arc::new(Schema::parse_str(text)?),
                }
            }
        })
    }

    /// The records of one reading: `(key, value)`.
    ///
    /// # Errors
    /// A value the Avro schema refuses (not expected: the schema is ours).
    pub fn encode(&mut self, r: &SimReading) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let key = || r.machine.to_string();
        Ok(match self {
            Self::Json => vec![(key(), r.to_json().into_bytes())],
            Self::JsonLong => r
                .to_long_json()
                .into_iter()
                .map(|m| (key(), m.into_bytes()))
                .collect(),
            Self::SparkplugB { seq } => {
                *seq += 1;
                vec![linewatch_window::encode_sparkplug_ddata(
                    &wide(r),
                    SPARKPLUG_EDGE_NODE,
                    *seq,
                )]
            }
            Self::Avro { long, id, schema } => {
                let head = || {
                    vec![
                        ("line".to_string(), Avro::String(r.line.to_string())),
                        ("machine".to_string(), Avro::String(r.machine.to_string())),
                        ("ts".to_string(), Avro::TimestampMillis(r.ts_ms)),
                    ]
                };
                let records = if *long {
                    r.values
                        .iter()
                        .map(|(tag, v)| {
                            let mut f = head();
                            f.push(("tag".into(), Avro::String(tag.to_string())));
                            f.push(("value".into(), Avro::Double(*v)));
                            Avro::Record(f)
                        })
                        .collect()
                } else {
                    let mut f = head();
                    f.push((
                        "values".into(),
                        Avro::Map(
                            r.values
                                .iter()
                                .map(|(c, v)| (c.to_string(), Avro::Double(*v)))
                                .collect(),
                        ),
                    ));
                    vec![Avro::Record(f)]
                };
                records
                    .into_iter()
                    .map(|rec| {
                        let mut m = vec![0u8];
                        m.extend_from_slice(&id.to_be_bytes());
                        m.extend(apache_avro::to_avro_datum(schema, rec)?);
                        Ok((key(), m))
                    })
                    .collect::<anyhow::Result<_>>()?
            }
        })
    }
}

/// A simulated reading as the decoders' [`linewatch_window::Reading`].
pub fn wide(r: &SimReading) -> linewatch_window::Reading {
    linewatch_window::Reading {
        line: r.line.to_string(),
        machine: r.machine.to_string(),
        ts_ms: r.ts_ms,
        values: r.values.iter().map(|(c, v)| (c.to_string(), *v)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linewatch_window::{
        AvroDecoder, DecodeLimits, Decoded, FieldMap, SchemaFetchError, SchemaSource,
    };

    #[derive(Debug)]
    struct One(&'static str);
    impl SchemaSource for One {
        fn schema(&mut self, _: u32) -> Result<String, SchemaFetchError> {
            Ok(self.0.to_string())
        }
    }

    fn reading() -> SimReading {
        SimReading {
            line: "press-3".into(),
            machine: "m-001".into(),
            ts_ms: 1_767_225_600_123,
            values: vec![("temp".into(), 71.25), ("rpm".into(), 1450.0)],
        }
    }

    /// What the simulator writes in each format decodes back to the same reading.
    #[test]
    fn every_format_decodes_back_to_the_reading() {
        let r = reading();
        let mut want = wide(&r);
        want.values.sort_by(|a, b| a.0.cmp(&b.0));
        let limits = DecodeLimits::default();
        for format in [Format::Json, Format::Avro, Format::SparkplugB] {
            let mut enc = ReadingEncoder::new(format, Some(7)).unwrap();
            let msgs = enc.encode(&r).unwrap();
            assert_eq!(msgs.len(), 1, "{format:?}");
            let (key, bytes) = &msgs[0];
            let decoded = match format {
                Format::Avro => AvroDecoder::new(
                    format,
                    FieldMap::default(),
                    Box::new(One(AVRO_WIDE_SCHEMA)),
                    limits.clone(),
                )
                .decode(bytes, Some(key.as_bytes())),
                _ => linewatch_window::ReadingsDecoder::new(
                    format,
                    FieldMap::default(),
                    Default::default(),
                    None,
                    limits.clone(),
                )
                .unwrap()
                .decode(bytes, Some(key.as_bytes())),
            };
            let mut got = match decoded.unwrap() {
                Decoded::Reading(g) => g,
                Decoded::Sparkplug(m) => m.readings.into_iter().next().unwrap(),
                other => panic!("{other:?}"),
            };
            got.values.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(got, want, "{format:?}");
        }
        let mut long = ReadingEncoder::new(Format::AvroLong, Some(8)).unwrap();
        let msgs = long.encode(&r).unwrap();
        let mut d = AvroDecoder::new(
            Format::AvroLong,
            FieldMap::default(),
            Box::new(One(AVRO_LONG_SCHEMA)),
            limits,
        );
        let values: Vec<(String, f64)> = msgs
            .iter()
            .map(|(k, b)| match d.decode(b, Some(k.as_bytes())).unwrap() {
                Decoded::Value(v) => (v.channel, v.value),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(values, vec![("temp".into(), 71.25), ("rpm".into(), 1450.0)]);
        assert!(ReadingEncoder::new(Format::Avro, None).is_err());
    }
}
