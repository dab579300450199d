//! The analytics service: revenue, occupancy, top films and recent activity for
//! the staff dashboard.
//!
//! Not built yet (issue #6). The contract is drafted in
//! `proto/bookmyseat/analytics/v1/analytics.proto`; nothing here pretends to work.
