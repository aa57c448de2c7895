{
  "targets": [
    {
      # The addon. -fno-tree-loop-distribute-patterns keeps the compiler from turning
      # the child's loops into memset/memcpy calls (libc, which the child must not call);
      # -z now binds every symbol at load, so no lazy binding can happen in the child.
      "target_name": "capsule",
      "sources": [
        "native/addon.cc",
        "native/spawn.cc",
        "native/netns_pool.cc",
        "native/userns_pool.cc",
        "native/child.cc",
        "native/signals.cc",
        "native/mounts.cc",
        "native/devices.cc",
        "native/fds.cc",
        "native/identity.cc",
        "native/userns.cc",
        "native/seccomp.cc",
        "native/tty.cc",
        "native/probe.cc",
        "native/rootless.cc",
        "native/oci.cc"
      ],
      "libraries": ["-lseccomp"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags": [
        "-Wall", "-Wextra", "-Werror", "-fstack-protector-strong",
        "-fno-tree-loop-distribute-patterns"
      ],
      "cflags_cc": ["-std=c++17", "-fno-exceptions"],
      "ldflags": ["-Wl,-z,now", "-Wl,-z,relro"]
    },
    {
      # capsule-init has no libc (see native/init.c), hence no TLS for a stack
      # protector canary: -fno-stack-protector is the one exception to the flags above.
      "target_name": "capsule-init",
      "type": "executable",
      "sources": ["native/init.c"],
      "cflags": [
        "-Wall", "-Wextra", "-Werror", "-O2", "-ffreestanding", "-fno-builtin",
        "-fno-stack-protector", "-fno-pie", "-fno-asynchronous-unwind-tables"
      ],
      "ldflags": ["-static", "-nostdlib", "-no-pie", "-s"]
    }
  ]
}
