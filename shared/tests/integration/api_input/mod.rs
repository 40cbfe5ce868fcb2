//! What the APIs take in: bad input of every kind, identity, the admin
//! calendar.

/// Malformed requests get a 4xx JSON error; identity only from the authorizer.
mod bad_input;
/// The admin API's calendar: create, update, list, delete.
mod calendar;
/// Any request at all, as a property test.
mod fuzz;
