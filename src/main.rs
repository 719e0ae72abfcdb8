fn main() -> std::process::ExitCode {
    mes_edge::cli::main()
}
