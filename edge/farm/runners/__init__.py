"""Where a cell runs: one runner per runtime (`table.RUNNERS`), the local browser and remote
endpoints (`browser`, `endpoints`), the native worker (`native`, `tflite_runner`,
`tflite_worker`), the loopback server and the TF.js runtime it serves (`server`, `web_runtime`).
"""
