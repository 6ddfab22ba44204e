"""The command line's subcommands, one module each; `pipeline.local.cli` assembles them and
`pipeline.local.target` resolves what each acts on."""
