"""One harness run on a fresh page of the local browser, for the tests of a browser runtime."""

from __future__ import annotations

import numpy as np


def run_page(store_root, config: dict, tmp_path, images=None, guard=None, then=None) -> dict:
    """Run the harness page once with `config` over a loopback server that serves the harness,
    its runtimes and the artifacts under `store_root`. `images` (uint8 NHWC) are served as
    ``/data/images.bin`` and every image's outputs come back; `guard` is a Playwright route
    handler for every request; `then(page, config)` runs on the page afterwards, its result
    under ``"then"``. Returns the harness's result."""
    from edge.farm.runners.browser import BrowserSession, resolve_browser, run_harness
    from edge.farm.runners.server import LoopbackServer
    from edge.farm.runners.web_runtime import harness_dir, node_modules

    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    roots = {"harness": harness_dir(), "node_modules": node_modules(),
             "artifacts": store_root, "data": data}
    config = dict(config)
    if images is not None:
        (data / "images.bin").write_bytes(np.ascontiguousarray(images, np.uint8).tobytes())
        config["imagesUrl"] = "/data/images.bin"
        config["returnOutputs"] = len(images)
    with LoopbackServer(roots) as server, BrowserSession(resolve_browser()) as session:
        context = session.browser().new_context()
        try:
            if guard is not None:
                context.route("**/*", guard)
            page = context.new_page()
            page.goto(f"{server.url}/harness/index.html")
            page.wait_for_function("() => document.title === 'ready'")
            result = run_harness(page, config, 90)
            if then is not None:
                result["then"] = then(page, config)
            return result
        finally:
            context.close()
