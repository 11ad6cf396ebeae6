"""What a simulated worker reads in a picture: the instruction an attention trap carries.

A person reads the yellow box in a trap's picture (study.crowd.traps). Simulated workers cannot
read pixels, so the simulation looks the instruction up in the study instead: for each trap item
the picture workers are sent (its hosted, encoded copy) is decoded and known by its content, as
the crowd knows every image it fetches (crowd.content_id), and mapped to the level the box asks
for. This is a simulation's shortcut, not something a worker's page reveals: the page source of
a trap is that of any pair."""

from __future__ import annotations


def trap_instructions(study) -> dict[str, int]:
    """{content id of a trap's picture: the level its instruction asks for}."""
    from study.crowd.hosting import Hosting
    from study.simulate.crowd import content_id
    from study.simulate.scoring import decode_image

    conn = study.connect()
    try:
        rows = conn.execute("SELECT result_path, expected_min FROM items WHERE kind = 'trap'"
                            ).fetchall()
        if not rows:
            return {}
        hosting = Hosting(study, conn)
        return {content_id(decode_image(hosting.file(r["result_path"]).read_bytes())):
                int(r["expected_min"]) for r in rows}
    finally:
        conn.close()
