"""The tests' name for `aesthetic_qr.headless`, which holds the server and client (the CLI uses them too)."""

from aesthetic_qr.headless import (
    ComfyUIClient,
    ComfyUINotFound,
    ComfyUIServer,
    ComfyUIStartError,
    ExecutionError,
    ExecutionResult,
    PromptError,
    comfyui_available,
    find_comfyui,
    input_default,
    input_spec_options,
    main,
    prepare_comfyui,
    with_defaults,
)

__all__ = ["ComfyUIClient", "ComfyUINotFound", "ComfyUIServer", "ComfyUIStartError", "ExecutionError",
           "ExecutionResult", "PromptError", "comfyui_available", "find_comfyui", "input_default",
           "input_spec_options", "main", "prepare_comfyui", "with_defaults"]

if __name__ == "__main__":
    raise SystemExit(main())
