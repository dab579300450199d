//! The contracts of BookMySeat as Rust types: one module per versioned protobuf
//! package under `proto/`. Services share these and `platform`, nothing else.

/// `bookmyseat.catalog.v1`: films, cinemas, screens, showtimes and prices.
pub mod catalog {
    pub mod v1 {
        tonic::include_proto!("bookmyseat.catalog.v1");
    }
}

/// `bookmyseat.seating.v1`: seat inventory, holds and bookings.
pub mod seating {
    pub mod v1 {
        tonic::include_proto!("bookmyseat.seating.v1");
    }
}

/// `bookmyseat.payments.v1`: checkouts, payments and refunds.
pub mod payments {
    pub mod v1 {
        tonic::include_proto!("bookmyseat.payments.v1");
    }
}

/// `bookmyseat.analytics.v1`: dashboard figures.
pub mod analytics {
    pub mod v1 {
        tonic::include_proto!("bookmyseat.analytics.v1");
    }
}

/// `bookmyseat.events.v1`: the messages that travel over NATS.
pub mod events {
    pub mod v1 {
        tonic::include_proto!("bookmyseat.events.v1");
    }
}

/// Conversions between `google.protobuf.Timestamp` and `chrono`, used by every
/// service at its gRPC edge (time is UTC on the wire and in storage).
pub mod time {
    use chrono::{DateTime, Utc};
    use prost_types::Timestamp;

    pub fn to_timestamp(at: DateTime<Utc>) -> Timestamp {
        Timestamp {
            seconds: at.timestamp(),
            nanos: at.timestamp_subsec_nanos() as i32,
        }
    }

    /// `None` for a timestamp outside chrono's range or with invalid nanos.
    pub fn from_timestamp(at: &Timestamp) -> Option<DateTime<Utc>> {
        let nanos = u32::try_from(at.nanos).ok()?;
        DateTime::from_timestamp(at.seconds, nanos)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn timestamps_round_trip_and_nonsense_is_refused() {
            let now = Utc::now();
            assert_eq!(from_timestamp(&to_timestamp(now)), Some(now));
            let broken = Timestamp {
                seconds: 0,
                nanos: -1,
            };
            assert_eq!(from_timestamp(&broken), None);
        }
    }
}
