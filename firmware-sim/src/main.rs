//! `firmware-sim`: simulated vehicles on a CAN bus or as an ELM327 adapter.

fn main() {
    for (name, description) in firmware_sim::scenarios() {
        println!("{name:12} {description}");
    }
}
