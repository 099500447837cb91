"""The generation pipeline, one module per step. A step does its one piece of work on rows it
claims and returns; it never queues the next step. generation/tasks.py chains them:

    start.py      start_generation: checks, uploads, credits held, rows created (web request)
    prompts.py    write_prompts: references analysed, one prompt per image (task run_generation,
                  which then queues submit_image for every image)
    submit.py     submit_image: one image to the image provider (task submit_image)
    results.py    collect_result: a reported result confirmed, stored and paid for, or the image
                  failed and its credits released (task collect_result, after a callback or poll)
    reconcile.py  reconcile: late results polled, overdue images failed, stalled work found
                  (periodic task reconcile, which queues what it found)

Every step can run twice without a second submission or a second charge. A step that must wait
raises lib.tasks.TryLater; the base task re-queues it (the one retry policy).
"""
