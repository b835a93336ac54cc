pub mod response_cap;
