/* publish_example.c — how an upstream C service publishes tracking events with evpub:
 * a page view, its leave, a product view and a purchase for one visitor, an invalid
 * event refused with its reason, then a flush that confirms every delivery.
 *
 *   publish_example BROKERS [TOPIC]     (BROKERS may also come from KAFKA_BROKERS)
 *
 * Exit status: 0 all delivered, 1 a delivery failed, 2 usage or configuration error. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "producers/evpub.h"

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* evpub_event_new, exiting when memory ran out (an example keeps it short). */
static evpub_event_t *new_event(const char *type, const char *visitor, int64_t t) {
    evpub_event_t *ev = evpub_event_new(type, visitor, t);
    if (!ev) {
        fprintf(stderr, "publish_example: out of memory\n");
        exit(2);
    }
    return ev;
}

/* Publishes ev and reports the outcome; the event is destroyed either way. */
static int publish(evpub_publisher_t *pub, evpub_event_t *ev, const char *what) {
    char errstr[512];
    int rc = evpub_publish(pub, ev, errstr, sizeof(errstr));
    if (rc == 0)
        printf("published %-14s eventId %s\n", what, evpub_event_id(ev));
    else
        printf("refused   %-14s %s\n", what, errstr);
    evpub_event_destroy(ev);
    return rc;
}

int main(int argc, char **argv) {
    const char *brokers = argc > 1 ? argv[1] : getenv("KAFKA_BROKERS");
    const char *topic = argc > 2 ? argv[2] : EVPUB_DEFAULT_TOPIC;
    if (!brokers || !*brokers) {
        fprintf(stderr, "usage: publish_example BROKERS [TOPIC]\n");
        return 2;
    }
    char errstr[512];
    const char *props[] = {"client.id", "publish-example", NULL};
    evpub_publisher_t *pub = evpub_publisher_new(brokers, topic, props, errstr, sizeof(errstr));
    if (!pub) {
        fprintf(stderr, "publish_example: %s\n", errstr);
        return 2;
    }
    const char *visitor = "5b7e0c1a-3f7d-4c59-9a57-1d4a0b2c9e11";
    int64_t t = now_ms();

    /* The page view carries the context: URL, referrer, device, language, place. */
    evpub_event_t *view = new_event("PAGE_VIEW", visitor, t);
    evpub_event_set_url(view,
                        "https://shop.example.com/products/aviator-classic?utm_source=newsletter"
                        "&utm_medium=email&utm_campaign=winter_sale");
    evpub_event_set_referrer(view, "https://mail.example.org/");
    evpub_event_set_title(view, "Aviator Classic – Eyeglasses | Lumen Optics");
    evpub_event_set_user_agent(view, "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
                                     "(KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36");
    evpub_event_set_client_hints(view, 1, "Android", "Pixel 8");
    evpub_event_set_screen(view, 412, 915);
    evpub_event_set_language(view, "de-DE");
    evpub_event_set_geo(view, "DE", "Berlin", "Berlin");
    /* Keep the page view's id: the leave event names it. */
    char page_view_id[64];
    snprintf(page_view_id, sizeof(page_view_id), "%s", evpub_event_id(view));
    publish(pub, view, "PAGE_VIEW");

    evpub_event_t *product = new_event("PRODUCT_VIEW", visitor, t + 400);
    evpub_event_set_url(product, "https://shop.example.com/products/aviator-classic");
    evpub_event_add_property_string(product, "productId", "LO-1001");
    evpub_event_add_property_string(product, "name", "Aviator Classic");
    evpub_event_add_property_number(product, "price", 149.0);
    publish(pub, product, "PRODUCT_VIEW");

    evpub_event_t *leave = new_event("PAGE_LEAVE", visitor, t + 42000);
    evpub_event_set_url(leave, "https://shop.example.com/products/aviator-classic");
    evpub_event_set_page_view_id(leave, page_view_id);
    evpub_event_set_time_on_page(leave, 41.6);
    evpub_event_set_scroll_depth(leave, 80);
    publish(pub, leave, "PAGE_LEAVE");

    evpub_event_t *purchase = new_event("PURCHASE", visitor, t + 95000);
    evpub_event_set_url(purchase, "https://shop.example.com/checkout/confirmation");
    evpub_event_set_user_id(purchase, "usr_48151623");
    evpub_event_set_value_text(purchase, "149.00", "EUR");
    evpub_event_set_properties_json(purchase, "{\"orderId\":\"LO-1000004242\",\"items\":"
                                              "[{\"productId\":\"LO-1001\",\"quantity\":1}]}");
    publish(pub, purchase, "PURCHASE");

    /* A value without its currency breaks the contract: refused here, never sent. */
    evpub_event_t *bad = new_event("PURCHASE", visitor, t + 96000);
    evpub_event_set_value(bad, 20.0, NULL);
    publish(pub, bad, "PURCHASE");

    int rc = 0;
    if (evpub_flush(pub, 30000, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "publish_example: %s\n", errstr);
        rc = 1;
    }
    evpub_stats_t st;
    evpub_publisher_stats(pub, &st);
    printf("published %llu, delivered %llu, failed %llu, refused as invalid %llu\n",
           (unsigned long long)st.published, (unsigned long long)st.delivered,
           (unsigned long long)st.failed, (unsigned long long)st.invalid);
    evpub_publisher_destroy(pub);
    return rc;
}
